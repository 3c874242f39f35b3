"""Helpers for the settings-menu tests: contracts with every role, signing in, posting forms."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp.accounts import create_contract
from idp.db import db
from idp.models import AuditEvent, Contract, User
from tests.helpers import PASSWORD, Factory, csrf_from
from tests.signin_helpers import update_contract, update_user  # noqa: F401 (re-exported)

WORK = "http://work.localhost:5000"
CODEC = "http://localhost"
EN = {"Accept-Language": "en"}


@dataclass
class Members:
    """A contract and one person of each role."""

    contract_id: str
    owner: User
    admin: User
    user: User

    def by_role(self, role: str) -> User:
        return {"owner": self.owner, "admin": self.admin, "user": self.user}[role]


def contract_with_members(app: Flask, factory: Factory, *, plan: str = "basic",
                          brand: str = "codec", prefix: str = "",
                          two_step: bool = False) -> Members:
    """A contract of ``plan`` with its owner, an admin and a user (all password users);
    2-step verification off unless ``two_step`` (as ``Factory.user``)."""
    prefix = prefix or f"{plan}-{brand}-"
    with app.app_context():
        contract, owner = create_contract(
            brand=brand, plan=plan, owner_email=f"{prefix}owner@example.com",
            owner_password=PASSWORD, name="株式会社テスト", owner_name="契約 太郎",
            two_step=two_step)
        db.session.refresh(owner)
        db.session.expunge(owner)
        contract_id = contract.id
    admin = factory.user(email=f"{prefix}admin@example.com", role="admin", contract_id=contract_id)
    user = factory.user(email=f"{prefix}user@example.com", role="user", contract_id=contract_id)
    return Members(contract_id, owner, admin, user)


def sign_in(client: FlaskClient, email: str, password: str = PASSWORD, *,
            base_url: str = CODEC, headers: dict[str, str] | None = None):
    """Open the settings sign-in page and submit the credentials (as a browser would)."""
    page = client.get("/settings/login", base_url=base_url, headers=headers)
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    return client.post("/settings/login", base_url=base_url, headers=headers,
                       data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                             "email": email, "password": password})


def signed_in(client: FlaskClient, email: str, *, base_url: str = CODEC,
              headers: dict[str, str] | None = None) -> None:
    response = sign_in(client, email, base_url=base_url, headers=headers)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert response.headers["Location"].endswith("/settings")


def csrf(client: FlaskClient, *, base_url: str = CODEC) -> str:
    """A CSRF token of this browser (any of our pages carries one)."""
    return csrf_from(client.get("/settings/login", base_url=base_url).get_data(as_text=True))


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, *,
         base_url: str = CODEC, headers: dict[str, str] | None = None):
    """Submit a form on ``path`` with this browser's CSRF token."""
    form = {"csrf_token": csrf(client, base_url=base_url), **(data or {})}
    return client.post(path, data=form, base_url=base_url, headers=headers)


def text(response) -> str:
    """The page as a reader sees its characters (``&lt;認証情報の変更&gt;`` -> ``<...>``)."""
    return html.unescape(response.get_data(as_text=True))


def error_of(response) -> str:
    match = re.search(r'<p class="error" role="alert"[^>]*>([^<]*)</p>', text(response))
    assert match, text(response)[:800]
    return match.group(1)


def menu_items(response) -> list[str]:
    return re.findall(r'data-item="([a-z_]+)"', text(response))


def contract(app: Flask, contract_id: str) -> Contract:
    with app.app_context():
        row = db.session.get(Contract, contract_id)
        db.session.expunge(row)
        return row


def user_row(app: Flask, user_id: str) -> User:
    with app.app_context():
        row = db.session.get(User, user_id)
        db.session.expunge(row)
        return row


def audit_actions(app: Flask, contract_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    with app.app_context():
        return [(e.action, e.actor, e.details) for e in
                db.session.query(AuditEvent).filter_by(contract_id=contract_id)
                .order_by(AuditEvent.id)]


