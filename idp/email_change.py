"""Email change (SPEC §6): a link to the NEW address; confirming it changes the login ID.

The owner asks from the settings menu, an admin for another user from the admin console.
Email change and login-method change cannot be under way at once (manual: finish the
email change first).
"""

from __future__ import annotations

from sqlalchemy import select

from . import audit, tickets
from .accounts import AccountError, normalise_email, valid_email
from .db import db
from .models import MailMessage, Ticket, User
from .notify import mail
from .web import brand_url, settings


def live_ticket(user: User, kind: str) -> Ticket | None:
    from .clock import now

    return db.session.scalar(
        select(Ticket).where(Ticket.user_id == user.id, Ticket.kind == kind,
                             Ticket.used_at.is_(None), Ticket.voided_at.is_(None),
                             Ticket.expires_at > now())
    )


def request(user: User, new_email: str, *, actor: User, lang: str) -> MailMessage:
    """Issue the ticket and queue its mail in the session; the caller commits, then
    ``mail.deliver``s. Raises ``AccountError`` whose message is an ``idp.i18n`` key."""
    address = normalise_email(new_email)
    if not valid_email(address):
        raise AccountError("email_invalid")
    if address == user.email:
        raise AccountError("email_unchanged")
    taken = db.session.scalar(select(User.id).where(User.brand == user.brand,
                                                    User.email == address))
    if taken:
        # Telling an admin the address is in use is needed to act on it; the owner's own
        # page shows the same message, and both are signed-in, audited callers.
        raise AccountError("email_taken")
    if live_ticket(user, "login_method_change") is not None:
        raise AccountError("email_change_while_method_change")
    issued = tickets.issue("email_change", user, email=address, issued_by=audit.actor_of(actor),
                           data={"new_email": address})
    b = settings().brands[user.brand]
    message = mail.queue("email_change", to=address, brand=b, lang=lang, name=user.name,
                         url=brand_url(b, "email_change.confirm", ticket=issued.token))
    audit.record("email_change.requested", actor=audit.actor_of(actor), target=f"user:{user.id}",
                 contract_id=user.contract_id, new_email=address)
    return message
