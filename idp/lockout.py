"""Account lockout (SPEC §4.2): consecutive wrong passwords lock; a mailed link unlocks.

Only wrong passwords typed in browsers the account never signed in from count here
(``idp.known_devices`` counts the others). Everything is added to the caller's
transaction; the caller commits, then delivers the returned mail.
"""

from __future__ import annotations

from flask import current_app

from . import audit, tickets
from .clock import now
from .models import MailMessage, User
from .notify import mail
from .web import brand_url


def is_locked(user: User) -> bool:
    return user.locked_at is not None


def register_failure(user: User) -> MailMessage | None:
    """Count a wrong password; at the threshold lock the account and queue the unlock mail."""
    user.failed_logins = (user.failed_logins or 0) + 1
    threshold = current_app.extensions["idp.settings"].lockout_threshold
    if user.failed_logins >= threshold and not is_locked(user):
        return lock(user)
    return None


def lock(user: User) -> MailMessage:
    user.locked_at = now()
    issued = tickets.issue("unlock", user)
    brand = current_app.extensions["idp.settings"].brands[user.brand]
    # The mail goes in the user's own language (nobody asked for it in a browser), and
    # the page its link opens speaks the same one.
    lang = user.locale or "ja"
    message = mail.queue("unlock", to=user.email, brand=brand, lang=lang, name=user.name,
                         url=brand_url(brand, "unlock.unlock", ticket=issued.token,
                                       ui_locales=lang))
    audit.record("user.locked", actor="system", target=f"user:{user.id}",
                 contract_id=user.contract_id, failed_logins=user.failed_logins)
    return message


def clear(user: User) -> None:
    """Unlock and restart the count (unlock link, password reset, successful sign-in)."""
    user.failed_logins = 0
    user.locked_at = None
