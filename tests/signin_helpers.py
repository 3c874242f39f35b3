"""Helpers for the sign-in protection, reset, unlock and cut-off tests: act like a browser."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import PASSWORD, csrf_from, form_fields, query_of
from tests.mail import Mail

CODEC = "http://localhost"
WORK = "http://work.localhost:5000"
BRAND_URLS = {"codec": CODEC, "work": WORK}
WRONG = "Wrong-Horse-9"


@contextmanager
def database(app: Flask):
    """An app context with the ORM session, committed by the caller."""
    with app.app_context():
        from idp.db import db

        yield db.session


def configure(app: Flask, **changes: Any) -> None:
    """Change settings of a running app (rate limits, thresholds) for one test."""
    app.extensions["idp.settings"] = app.extensions["idp.settings"].replace(**changes)


def update_user(app: Flask, user_id: str, **values: Any) -> None:
    from idp.models import User

    with database(app) as session:
        row = session.get(User, user_id)
        for name, value in values.items():
            setattr(row, name, value)
        session.commit()


def get_user(app: Flask, user_id: str):
    from idp.models import User

    with database(app) as session:
        row = session.get(User, user_id)
        session.expunge(row)
        return row


def update_contract(app: Flask, contract_id: str, **values: Any) -> None:
    from idp.models import Contract

    with database(app) as session:
        row = session.get(Contract, contract_id)
        for name, value in values.items():
            setattr(row, name, value)
        session.commit()


def audit_actions(app: Flask, user_id: str | None = None) -> list[tuple[str, dict]]:
    from sqlalchemy import select

    from idp.models import AuditEvent

    with database(app) as session:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if user_id is not None:
            stmt = stmt.where(AuditEvent.target == f"user:{user_id}")
        return [(e.action, dict(e.details)) for e in session.scalars(stmt)]


def lang_headers(lang: str) -> dict[str, str]:
    return {"Accept-Language": "en" if lang == "en" else "ja"}


def login(http: FlaskClient, email: str, password: str = PASSWORD, *, base_url: str = CODEC,
          lang: str = "ja", address: str | None = None, next_url: str | None = None):
    """Open the login page and submit it, as a browser would (one POST)."""
    environ = {"REMOTE_ADDR": address} if address else {}
    path = "/login" + (f"?next={next_url}" if next_url is not None else "")
    page = http.get(path, base_url=base_url, headers=lang_headers(lang), environ_base=environ)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    html = page.get_data(as_text=True)
    data = {"csrf_token": csrf_from(html), "email": email, "password": password}
    data.update({k: v for k, v in form_fields(html).items() if k == "next"})
    return http.post("/login", data=data, base_url=base_url, headers=lang_headers(lang),
                     environ_base=environ)


def fail(http: FlaskClient, email: str, times: int, **kwargs: Any) -> None:
    for _ in range(times):
        response = login(http, email, WRONG, **kwargs)
        assert response.status_code == 401, response.status_code


def signed_in(response) -> bool:
    return response.status_code == 302 and any(
        h.startswith("idp_session=") and not h.startswith("idp_session=;")
        for h in response.headers.getlist("Set-Cookie"))


def error_texts(response) -> list[str]:
    return re.findall(r'<p class="error" role="alert">([^<]*)</p>',
                      response.get_data(as_text=True))


def page_text(response) -> str:
    return response.get_data(as_text=True)


def base_of(mail: Mail) -> str:
    """The scheme and host the mailed link points at (the brand's host)."""
    parts = urlsplit(mail.links[0])
    return f"{parts.scheme}://{parts.netloc}"


def ticket_of(mail: Mail) -> str:
    return query_of(mail.link)["ticket"]


def tampered(mail: Mail) -> str:
    """The mailed link with one character of its ticket changed."""
    token = ticket_of(mail)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return mail.link.replace(token, flipped)


def open_link(http: FlaskClient, mail: Mail, *, lang: str = "ja"):
    return http.get(mail.link, base_url=base_of(mail), headers=lang_headers(lang))


def submit_link_page(http: FlaskClient, mail: Mail, *, lang: str = "ja", **fields: str):
    """Open the mailed link, then press the page's button with ``fields`` filled in."""
    page = open_link(http, mail, lang=lang)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    html = page.get_data(as_text=True)
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    data = {**form_fields(html), **fields}
    return http.post(action, data=data, base_url=base_of(mail), headers=lang_headers(lang))


def trial_user(app: Flask, *, email: str, brand: str = "codec", password: str = PASSWORD,
               two_step: bool = False):
    """The owner of a new trial contract (2-step verification off unless ``two_step``)."""
    from idp.accounts import create_contract

    with database(app) as session:
        _, owner = create_contract(brand=brand, plan="trial", owner_email=email,
                                   owner_password=password, owner_name="試用 花子",
                                   two_step=two_step)
        session.refresh(owner)
        session.expunge(owner)
        return owner
