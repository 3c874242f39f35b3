"""Remembered browsers: "remember this browser for a while" skips 2-step verification.

A remembered browser is a row (``mfa_remembered_browsers``) and a signed cookie naming the
user and a random token; only the token's SHA-256 is stored. Both must agree: the cookie
is useless for another user (the signature covers the user id, the row names the user),
and a revoked or expired row ends it however long the cookie lives. The cookie holds a few
users (people share computers), the newest first.
"""

from __future__ import annotations

from flask import Response, current_app, g, request
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update

from ..clock import now
from ..db import db
from ..models import RememberedBrowser, User
from ..security import random_token, sha256_hex

COOKIE = "idp_mfa"
#: Users remembered per browser.
MAX_USERS = 5
_SALT = "idp remembered browser"
_MAX_COOKIE = 2048
_LABEL = 200


def _settings():
    return current_app.extensions["idp.settings"]


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(_settings().secret_key, salt=_SALT)


def _entries() -> list[list[str]]:
    """``[user_id, token]`` pairs of a valid cookie; [] for none or a forgery."""
    if "idp_mfa_entries" in g:
        return g.idp_mfa_entries
    raw = request.cookies.get(COOKIE)
    entries: list[list[str]] = []
    if raw and len(raw) <= _MAX_COOKIE:
        try:
            value = _serializer().loads(raw)
        except BadSignature:
            value = None
        if isinstance(value, list):
            entries = [e for e in value if isinstance(e, list) and len(e) == 2
                       and all(isinstance(x, str) for x in e)][:MAX_USERS]
    g.idp_mfa_entries = entries
    return entries


def lifetime() -> int:
    return _settings().mfa_remember_days * 86400


def find(user: User) -> RememberedBrowser | None:
    """This browser's live record for ``user``, or None. Looked up once per request: the
    chain's conditions and the sign-in's completion both ask."""
    found = g.setdefault("idp_mfa_found", {})
    if user.id not in found:
        found[user.id] = _lookup(user)
    return found[user.id]


def _lookup(user: User) -> RememberedBrowser | None:
    token = next((tok for uid, tok in _entries() if uid == user.id), None)
    if token is None or len(token) > 64:
        return None
    row = db.session.scalar(select(RememberedBrowser).where(
        RememberedBrowser.token_hash == sha256_hex(token)))
    t = now()
    # The row must name the same user: a cookie copied between users does not carry over.
    if row is None or row.user_id != user.id or row.revoked_at is not None \
            or row.expires_at <= t:
        return None
    return row


def remember(user: User) -> RememberedBrowser:
    """Remember this browser for ``user`` (the caller commits; ``attach`` sets the cookie).

    A browser already remembered for the user gets a new token and record: the lifetime
    starts again from this sign-in, and the old record is revoked.
    """
    old = find(user)
    t = now()
    if old is not None:
        old.revoked_at = t
    token = random_token()
    label = (request.headers.get("User-Agent") or "")[:_LABEL]
    row = RememberedBrowser(user_id=user.id, token_hash=sha256_hex(token), label=label,
                            created_at=t, last_seen_at=t, expires_at=t + lifetime())
    db.session.add(row)
    others = [e for e in _entries() if e[0] != user.id]
    entries = [[user.id, token], *others][:MAX_USERS]
    g.idp_mfa_entries = entries
    g.idp_mfa_cookie = _serializer().dumps(entries)
    g.setdefault("idp_mfa_found", {})[user.id] = row
    return row


def seen(row: RememberedBrowser) -> None:
    """The browser was used for a sign-in (the settings menu shows when)."""
    row.last_seen_at = now()


def listing(user: User) -> list[RememberedBrowser]:
    """The user's live remembered browsers, the most recently used first."""
    t = now()
    return list(db.session.scalars(
        select(RememberedBrowser)
        .where(RememberedBrowser.user_id == user.id, RememberedBrowser.revoked_at.is_(None),
               RememberedBrowser.expires_at > t)
        .order_by(RememberedBrowser.last_seen_at.desc(), RememberedBrowser.id.desc())))


def revoke(user: User, browser_id: int) -> bool:
    """Revoke one of the user's browsers; False when it is not theirs or already gone."""
    g.pop("idp_mfa_found", None)
    result = db.session.execute(
        update(RememberedBrowser)
        .where(RememberedBrowser.id == browser_id, RememberedBrowser.user_id == user.id,
               RememberedBrowser.revoked_at.is_(None))
        .values(revoked_at=now())
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def revoke_all(user: User) -> int:
    """Revoke every remembered browser of the user (enrolment reset); how many were live."""
    g.pop("idp_mfa_found", None)
    t = now()
    result = db.session.execute(
        update(RememberedBrowser)
        .where(RememberedBrowser.user_id == user.id, RememberedBrowser.revoked_at.is_(None),
               RememberedBrowser.expires_at > t)
        .values(revoked_at=t)
        .execution_options(synchronize_session=False))
    return result.rowcount


def attach(response: Response) -> Response:
    """After a request that remembered a browser: set the cookie."""
    value = g.pop("idp_mfa_cookie", None)
    if value is not None:
        response.set_cookie(COOKIE, value, max_age=lifetime(), path="/", httponly=True,
                            secure=_settings().secure_cookies, samesite="Lax")
    return response
