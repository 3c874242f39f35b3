"""Password sign-in as every sign-in page uses it (login page, settings menu).

One function decides whether an email + password is a sign-in, so lockout, rate limits
and the contract checks apply wherever a password is typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import User


@dataclass(frozen=True)
class SignInResult:
    """The signed-in user, or why not: ``error`` is an ``idp.i18n`` key for the page."""

    user: User | None
    error: str | None = None
    status: int = 200
    #: Seconds to send as ``Retry-After`` when rate limited.
    retry_after: int | None = None


def password_sign_in(email: str, password: str) -> SignInResult:
    """Check the credentials; the caller commits and starts its session on success."""
    from .endpoints.login import authenticate

    user = authenticate(email, password)
    if user is None:
        return SignInResult(None, "bad_credentials", 401)
    return SignInResult(user)
