"""The settings menu's own sign-in session (認証・契約情報変更ログイン), apart from the OIDC one.

The settings menu changes credentials and the contract itself, so it asks for the password
again and keeps that proof only briefly: 30 minutes idle (2 hours at most), in its own
cookie scoped to ``/settings`` with ``SameSite=Strict``. An OIDC session never opens it and
it never opens the OIDC side. As for sign-in sessions, the cookie holds a random id and the
store key is its SHA-256 (a store dump cannot be replayed as cookies), and every sign-in
issues a new id (session fixation).

Expiry is checked against the record's own times from ``idp.clock``, not left to the
store's TTL alone: Redis keeps its own time, and the app's clock is the one tests move.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from flask import Response, current_app, g, request

from .clock import now
from .models import User
from .security import random_token, sha256_hex

COOKIE = "idp_settings"
PATH = "/settings"
#: Idle lifetime: the proof of a recently typed password is what the menu relies on.
IDLE = 30 * 60
#: Even an active session re-asks for the password after this long.
ABSOLUTE = 2 * 3600
_PREFIX = "settings:"
#: A visit refreshes the idle timer at most once a minute (one store write, not one per page).
_TOUCH_AFTER = 60
_MAX_COOKIE = 128


@dataclass
class SettingsSession:
    user_id: str
    #: ``User.session_epoch`` at sign-in: a bump (cancellation, reset, ...) ends the session.
    epoch: int
    started_at: int
    seen_at: int
    #: Store key of this session (SHA-256 of the cookie), for counters tied to it.
    key: str = ""


def _store():
    return current_app.extensions["idp.store"]


def _key(raw: str) -> str:
    return _PREFIX + sha256_hex(raw)


def current() -> SettingsSession | None:
    """The live session of this browser, or None. Call before the ORM holds writes."""
    if "idp_settings_session" in g:
        return g.idp_settings_session
    g.idp_settings_session = None
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > _MAX_COOKIE:
        return None
    key = _key(raw)
    record = _store().get(key)
    if record is None:
        return None
    record.pop("key", None)
    session = SettingsSession(**record, key=key)
    t = now()
    if t - session.seen_at >= IDLE or t - session.started_at >= ABSOLUTE:
        _store().delete(key)
        return None
    if t - session.seen_at >= _TOUCH_AFTER:
        session.seen_at = t
        _save(session)
    g.idp_settings_session = session
    return session


def start(response: Response, user: User) -> SettingsSession:
    """Replace any session of this browser with a fresh one (new id) for ``user``."""
    discard()
    raw = random_token()
    t = now()
    session = SettingsSession(user_id=user.id, epoch=user.session_epoch, started_at=t,
                              seen_at=t, key=_key(raw))
    _save(session)
    # No Max-Age: the server decides expiry (idle timer); the cookie ends with the browser.
    response.set_cookie(COOKIE, raw, path=PATH, httponly=True,
                        secure=current_app.extensions["idp.settings"].secure_cookies,
                        samesite="Strict")
    g.idp_settings_session = session
    return session


def discard() -> None:
    """Forget this browser's session server-side (the cookie then points at nothing)."""
    raw = request.cookies.get(COOKIE)
    if raw and len(raw) <= _MAX_COOKIE:
        _store().delete(_key(raw))
    session = g.get("idp_settings_session")
    if session is not None and session.key:
        _store().delete(session.key)
    g.idp_settings_session = None


def end(response: Response) -> None:
    """Sign out of the settings menu: the server-side record and the cookie."""
    discard()
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="Strict",
                           secure=current_app.extensions["idp.settings"].secure_cookies)


def _save(session: SettingsSession) -> None:
    remaining = min(IDLE, session.started_at + ABSOLUTE - session.seen_at)
    record = asdict(session)
    record.pop("key")
    _store().put(session.key, record, max(1, remaining))


def alive(key: str, user_id: str) -> bool:
    """Is the session stored under ``key`` still live for ``user_id``? (For pages outside
    /settings, which do not receive its cookie, that act on its authority.)"""
    record = _store().get(key)
    if record is None or record.get("user_id") != user_id:
        return False
    t = now()
    return t - record["seen_at"] < IDLE and t - record["started_at"] < ABSOLUTE
