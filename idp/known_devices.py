"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies").

After a successful sign-in the browser gets a signed cookie naming the account and a
random nonce. Wrong passwords typed in a browser holding such a cookie for the account
count against that cookie, not against the account: a stranger guessing from elsewhere
locks the account for unknown browsers, yet its owner still signs in from a browser the
account has used. The lockout is therefore no button anyone can press to keep a user out.

The cookie is signed with the app secret (itsdangerous): it cannot be forged for another
account. It holds a few accounts (people share computers); the newest first.
"""

from __future__ import annotations

from flask import Response, current_app, g, request
from itsdangerous import BadSignature, URLSafeSerializer

from .clock import now
from .security import random_token, sha256_hex

COOKIE = "idp_device"
#: A browser stays known this long after its last successful sign-in.
LIFETIME = 180 * 86400
#: Accounts remembered per browser.
MAX_ACCOUNTS = 5
_SALT = "idp known device"
_FAILURES = "device-fail:"
_MAX_COOKIE = 2048


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.extensions["idp.settings"].secret_key, salt=_SALT)


def _settings():
    return current_app.extensions["idp.settings"]


def _entries() -> list[list]:
    """``[user_id, nonce, issued_at]`` entries of a valid cookie; [] for none or a forgery."""
    raw = request.cookies.get(COOKIE)
    if not raw or len(raw) > _MAX_COOKIE:
        return []
    try:
        value = _serializer().loads(raw)
    except BadSignature:
        return []
    if not isinstance(value, list):
        return []
    t = now()
    return [e for e in value
            if isinstance(e, list) and len(e) == 3 and isinstance(e[0], str)
            and isinstance(e[1], str) and isinstance(e[2], int) and e[2] + LIFETIME > t]


def _failure_key(nonce: str) -> str:
    return _FAILURES + sha256_hex(nonce)


def nonce_for(user_id: str) -> str | None:
    """This browser's nonce for ``user_id`` when it is a known, not blocked browser."""
    for uid, nonce, _ in _entries():
        if uid == user_id:
            failures = current_app.extensions["idp.store"].get(_failure_key(nonce))
            if isinstance(failures, int) and failures >= _settings().lockout_threshold:
                # Blocked: the browser is treated as unknown (the account's own lock and
                # rate limits apply) until a successful sign-in issues a new nonce.
                return None
            return nonce
    return None


def record_failure(nonce: str) -> int:
    """Count a wrong password against this browser's cookie; returns the count."""
    return current_app.extensions["idp.store"].incr(_failure_key(nonce), LIFETIME)


def remember(user_id: str, *, replaces: str | None = None) -> None:
    """Issue a new cookie entry for ``user_id`` (set on the response by ``attach``).

    A new nonce at every sign-in (OWASP): the old one's failure count goes with it.
    """
    if replaces:
        current_app.extensions["idp.store"].delete(_failure_key(replaces))
    others = [e for e in _entries() if e[0] != user_id]
    entries = [[user_id, random_token(16), now()], *others][:MAX_ACCOUNTS]
    g.idp_device_cookie = _serializer().dumps(entries)


def attach(response: Response) -> Response:
    """After any request that signed someone in (login page, settings menu): set the cookie."""
    value = g.pop("idp_device_cookie", None)
    if value is not None:
        response.set_cookie(COOKIE, value, max_age=LIFETIME, path="/", httponly=True,
                            secure=_settings().secure_cookies, samesite="Lax")
    return response
