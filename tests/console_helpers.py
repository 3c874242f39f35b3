"""Helpers for the admin console, invitation and login-method tests: act as a browser does."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.helpers import PASSWORD, csrf_from

#: Each brand's internet host (config/brands/*.toml): where its mailed links point.
HOSTS = {"codec": "http://127.0.0.1:5000", "work": "http://work.localhost:5000"}
#: What the invitee or user picks; meets the policy and is not PASSWORD.
NEW_PASSWORD = "Blue-Lantern-42"
BRAND_NAMES = {("codec", "ja"): "コーデックストレージ", ("codec", "en"): "Codec Storage",
               ("work", "ja"): "ワークストレージ", ("work", "en"): "Work Storage"}


def headers_for(lang: str) -> dict[str, str]:
    return {"Accept-Language": lang}


def text_of(response) -> str:
    """The page as a user reads it: entities decoded (Jinja escapes quotes)."""
    return html_lib.unescape(response.get_data(as_text=True))


def plain_text(response) -> str:
    """The page's visible words: tags dropped, whitespace collapsed."""
    words = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))
    return html_lib.unescape(re.sub(r"\s+", " ", words)).replace(" :", ":")


def error_of(response) -> str:
    match = re.search(r'<p class="error" role="alert">(.*?)</p>', response.get_data(as_text=True),
                      re.S)
    assert match, response.get_data(as_text=True)[:1500]
    return html_lib.unescape(match.group(1))


def notices_of(response) -> list[str]:
    return [html_lib.unescape(m) for m in re.findall(
        r'<p class="(?:notice|error)" role="status">(.*?)</p>', response.get_data(as_text=True))]


def hidden(html: str, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name} in page"
    return html_lib.unescape(match.group(1))


def sign_in(http: FlaskClient, *, email: str, password: str = PASSWORD,
            base_url: str = HOSTS["codec"]):
    """Sign in on the login page without an OIDC flow: leaves the session cookie."""
    page = http.get("/login", base_url=base_url)
    response = http.post("/login", base_url=base_url, data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "email": email,
        "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:1000]
    return response


def submit(http: FlaskClient, page_path: str, action: str, *, base_url: str = HOSTS["codec"],
           ui: str = "ja", **data: str):
    """Open ``page_path`` for its CSRF token, then POST ``data`` to ``action`` (``ui``: the
    browser's language)."""
    page = http.get(page_path, base_url=base_url, headers=headers_for(ui))
    assert page.status_code == 200, page.get_data(as_text=True)[:1000]
    return http.post(action, base_url=base_url, headers=headers_for(ui),
                     data={"csrf_token": csrf_from(page.get_data(as_text=True)), **data})


def invite(http: FlaskClient, *, name: str = "佐藤 花子", email: str, role: str = "user",
           lang: str = "ja", base_url: str = HOSTS["codec"], ui: str = "ja"):
    """Fill in the console's invitation form as an owner or admin."""
    return submit(http, "/admin/users/invite", "/admin/users/invite", base_url=base_url,
                  ui=ui, name=name, email=email, role=role, lang=lang)


def send_email_form(http: FlaskClient, user_id: str, email: str, *,
                    base_url: str = HOSTS["codec"], lang: str = "ja"):
    """The user-detail page's email form, then OK on the confirmation page."""
    detail = f"/admin/users/{user_id}"
    first = submit(http, detail, detail + "/email", base_url=base_url, ui=lang, email=email)
    assert first.status_code == 200, first.get_data(as_text=True)[:1500]
    page = first.get_data(as_text=True)
    return http.post(detail + "/email", base_url=base_url, headers=headers_for(lang),
                     data={"csrf_token": csrf_from(page), "email": hidden(page, "email"),
                           "confirmed": hidden(page, "confirmed")})


def fetch(app: Flask, model: type, **where: Any):
    """One row, detached, with its attributes loaded (fresh from the database)."""
    from idp.db import db

    with app.app_context():
        row = db.session.scalar(select(model).filter_by(**where))
        if row is not None:
            db.session.expunge(row)
        return row


def fetch_all(app: Flask, model: type, **where: Any) -> list:
    from idp.db import db

    with app.app_context():
        rows = list(db.session.scalars(select(model).filter_by(**where)))
        for row in rows:
            db.session.expunge(row)
        return rows


def update(app: Flask, model: type, key: Any, **values: Any) -> None:
    from idp.db import db

    with app.app_context():
        row = db.session.get(model, key)
        for name, value in values.items():
            setattr(row, name, value)
        db.session.commit()


def audit_actions(app: Flask, target: str) -> list[str]:
    from idp.models import AuditEvent

    return [e.action for e in sorted(fetch_all(app, AuditEvent, target=target),
                                     key=lambda e: e.id)]


def remember_browsers(app: Flask, user: Any, count: int) -> None:
    """``count`` live remembered browsers of ``user`` (as 2-step verification leaves them)."""
    import uuid

    from idp.db import db
    from idp.models import RememberedBrowser
    from idp.security import sha256_hex

    with app.app_context():
        t = int(app.extensions["idp.clock"].now())
        db.session.add_all(RememberedBrowser(
            user_id=user.id, token_hash=sha256_hex(uuid.uuid4().hex), label="Firefox",
            created_at=t, last_seen_at=t, expires_at=t + 30 * 86400) for _ in range(count))
        db.session.commit()


def live_browsers(app: Flask, user: Any) -> int:
    from idp.models import RememberedBrowser

    return sum(1 for b in fetch_all(app, RememberedBrowser, user_id=user.id)
               if b.revoked_at is None)
