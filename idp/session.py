"""Browser sign-in sessions, kept server-side in the ephemeral store.

The cookie holds a random id; the store key is its SHA-256, so a store dump cannot be
replayed as cookies. Signing in always issues a new id (defeats session fixation).

A session records the user's ``session_epoch`` at sign-in. ``current`` answers only for a
user who may still use the service under that epoch (``contracts.user_usable``): a
password reset, a cancellation or an ended trial ends every session at once, although
sessions cannot be listed per user.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from flask import Response, current_app, g, request

from . import contracts
from .clock import now
from .db import db
from .models import User
from .security import random_token, sha256_hex

COOKIE = "idp_session"
BROWSER_COOKIE = "idp_browser"
_PREFIX = "sess:"


@dataclass
class Session:
    user_id: str
    auth_time: int
    #: Public session id (the ``sid`` claim); not the cookie value.
    sid: str
    amr: list[str] = field(default_factory=list)
    acr: str = ""
    clients: list[str] = field(default_factory=list)
    #: ``User.session_epoch`` at sign-in.
    epoch: int = 0
    #: ``internet`` or ``line``: how the sign-in came (a line-only contract accepts only
    #: sessions that came over a line, also those made before it switched).
    route: str = "internet"


def _store():
    return current_app.extensions["idp.store"]


def _settings():
    return current_app.extensions["idp.settings"]


def current() -> Session | None:
    """This browser's session, or None (also when its user may no longer use it)."""
    if "idp_session" not in g:
        raw = request.cookies.get(COOKIE)
        record = _store().get(_PREFIX + sha256_hex(raw)) if raw and len(raw) <= 128 else None
        session = Session(**record) if record else None
        if session is not None and not usable(session):
            session = None
        g.idp_session = session
    return g.idp_session


def usable(session: Session) -> bool:
    """Is the session's user still allowed in under the epoch it signed in with?"""
    return contracts.user_usable(db.session.get(User, session.user_id), epoch=session.epoch)


def start(*, user_id: str, amr: list[str], acr: str, auth_time: int | None = None,
          keep: Session | None = None, route: str = "internet") -> Session:
    """Replace any current session with a fresh one (new id) for ``user_id``.

    The cookie goes out with whatever response this request sends (``attach``).
    ``keep``: a session whose ``sid`` and client list carry over (a step-up raises the
    level of the same session; the id still changes, against fixation).
    """
    user = db.session.get(User, user_id)
    raw = request.cookies.get(COOKIE)
    if raw:
        _store().delete(_PREFIX + sha256_hex(raw))
    token = random_token()
    session = Session(user_id=user_id, auth_time=now() if auth_time is None else auth_time,
                      sid=keep.sid if keep else random_token(16), amr=amr, acr=acr,
                      clients=list(keep.clients) if keep else [],
                      epoch=user.session_epoch if user is not None else -1, route=route)
    _store().put(_PREFIX + sha256_hex(token), asdict(session), _settings().session_ttl)
    g.idp_session = session
    g.idp_session_token = token
    g.idp_session_cookie = token
    return session


def attach(response: Response) -> Response:
    """After a request that started a session: set its cookie on whatever it answers."""
    token = g.pop("idp_session_cookie", None)
    if token is not None:
        _set_cookie(response, COOKIE, token, _settings().session_ttl)
    return response


def remember_client(client_id: str) -> None:
    """Record that ``client_id`` got tokens in this session (for logout bookkeeping)."""
    session = current()
    token = g.get("idp_session_token") or request.cookies.get(COOKIE)
    if session is None or token is None or client_id in session.clients:
        return
    session.clients.append(client_id)
    _store().put(_PREFIX + sha256_hex(token), asdict(session), _settings().session_ttl)


def end(response: Response) -> None:
    raw = request.cookies.get(COOKIE)
    if raw:
        _store().delete(_PREFIX + sha256_hex(raw))
    response.delete_cookie(COOKIE, path="/", secure=_settings().secure_cookies, httponly=True,
                           samesite="Lax")
    g.idp_session = None
    g.pop("idp_session_cookie", None)


def browser_id(response: Response | None = None) -> str:
    """A random id per browser that binds login transactions to the browser that began them."""
    value = request.cookies.get(BROWSER_COOKIE) or g.get("idp_browser")
    if not value:
        value = random_token(16)
        g.idp_browser = value
    if response is not None and request.cookies.get(BROWSER_COOKIE) != value:
        _set_cookie(response, BROWSER_COOKIE, value, 365 * 86400)
    return value


def _set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True,
        secure=_settings().secure_cookies, samesite="Lax",
    )
