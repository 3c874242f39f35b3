"""The minimal email + password sign-in page (accounts issue adds lockout and the rest)."""

from __future__ import annotations

import unicodedata

from flask import Blueprint, Response, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import flow as flows
from .. import session as sessions
from ..clock import now
from ..db import db
from ..i18n import t
from ..models import Contract, User
from ..security import hash_password, needs_rehash, verify_password
from ..web import brand

bp = Blueprint("login", __name__)


def normalise_email(value: str) -> str:
    # NFKC so a full-width address typed on a Japanese keyboard still matches.
    return unicodedata.normalize("NFKC", value).strip().lower()


def _page(flow_id: str | None, *, error: str | None = None, email: str = "",
          status: int = 200) -> Response:
    body = render_template("login.html", flow_id=flow_id, error=error, email=email)
    return Response(body, status=status)


def authenticate(email: str, password: str) -> User | None:
    """The active user with these credentials, else None; always costs one argon2 hash."""
    user = db.session.scalar(
        select(User).where(User.brand == brand().id, User.email == normalise_email(email))
    )
    if not verify_password(password, user.password_hash if user else None):
        return None
    if user is None or user.status != "active" or user.login_method != "password":
        return None
    contract = db.session.get(Contract, user.contract_id)
    if contract is None or contract.status != "active":
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    flow_id = request.values.get("flow")
    browser = sessions.browser_id()
    flow = flows.load(flow_id, browser) if flow_id else None
    if flow_id and flow is None:
        return _page(None, error=t("flow_expired"), status=400)
    flows.use_ui_locales(flow)
    if request.method == "GET":
        hint = flow.auth.login_hint if flow else None
        return _page(flow_id, email=hint or "")

    email = request.form.get("email", "")
    password = request.form.get("password", "")
    if not email or not password:
        return _page(flow_id, error=t("missing_fields"), email=email, status=400)
    user = authenticate(email, password)
    if user is None:
        return _page(flow_id, error=t("bad_credentials"), email=email, status=401)

    user.last_login_at = now()
    db.session.commit()
    response = redirect(url_for("login.done"))
    sessions.start(response, user_id=user.id, amr=["pwd"], acr=flows.ACR_PASSWORD)
    if flow is None:
        return response
    flow.login_done = True
    flows.save(flow)
    result = flows.dispatch(flow)
    for value in response.headers.getlist("Set-Cookie"):
        result.headers.add("Set-Cookie", value)
    return result


@bp.get("/")
@bp.get("/signed-in")
def done() -> Response:
    session = sessions.current()
    user = db.session.get(User, session.user_id) if session else None
    if user is None:
        return redirect(url_for("login.login"))
    return Response(render_template("signed_in.html", user=user))
