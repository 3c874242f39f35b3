"""Email change (SPEC §6): a link to the NEW address; confirming it changes the login ID.

The owner asks from the settings menu, an admin for another user from the admin console.
Email change and login-method change cannot be under way at once (manual: finish the
email change first). Confirming (``confirm``) sets the new address, a new password for
password users, resets 2-step enrolment (mailing a notice) and ends every session and
token of the user.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import audit, contracts, tickets, web
from .accounts import AccountError, normalise_email, reset_two_step, set_password, valid_email
from .clock import now
from .db import db
from .models import Contract, MailMessage, Ticket, User
from .notify import mail
from .oauth.tokens import revoke_access_tokens
from .passwords import check_new as check_new_password
from .web import brand_url, settings


def live_ticket(user: User, kind: str) -> Ticket | None:
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


# -- confirmation (the link in the mail to the new address) ----------------------------


@dataclass(frozen=True)
class Pending:
    """An email change waiting for its confirmation page."""

    ticket: Ticket
    user: User
    new_email: str
    #: Password users set their password again on the confirmation page (manual).
    needs_password: bool


def pending(token: str | None) -> Pending:
    """The change a link stands for; raises ``TicketError`` or ``AccountError``."""
    ticket, user = tickets.open_link(token, "email_change", brand_id=web.brand().id)
    if user.status != "active" or not contracts.usable(db.session.get(Contract,
                                                                      user.contract_id)):
        raise AccountError("email_change_unavailable")
    new_email = normalise_email(ticket.data.get("new_email") or ticket.email)
    return Pending(ticket, user, new_email, user.login_method == "password")


def _taken(user: User, address: str) -> bool:
    return db.session.scalar(select(User.id).where(User.brand == user.brand,
                                                   User.email == address,
                                                   User.id != user.id)) is not None


def confirm(token: str | None, *, password: str = "", confirmation: str = "") -> Pending:
    """Validate everything, then use the ticket and change the address; commits.

    Nothing is consumed while any check fails (the user corrects the form and the link
    still works). Raises ``TicketError``, ``AccountError`` or ``PolicyViolation``.
    """
    change = pending(token)
    user = change.user
    if change.needs_password:
        check_new_password(password, confirmation, email=change.new_email)
    if _taken(user, change.new_email):
        raise AccountError("email_taken")
    tickets.use(token, "email_change")
    old_email = user.email
    user.email = change.new_email
    user.email_verified = True
    user.updated_at = now()
    if change.needs_password:
        set_password(user, password)
    # The notice goes to the new address (now user.email): the enrolment belongs to the
    # account, whose holder reads mail there from now on. Whoever confirmed just proved they
    # read it, so it is a receipt rather than an alarm; an alarm would belong at the OLD
    # address, as a notice of the address change itself, which SPEC §6 does not send.
    notice = reset_two_step(user, reason="email_change", actor=user)
    tickets.void_sent_to(user, old_email)
    digests = contracts.revoke_user_access([user.id])
    audit.record("email.changed", actor=audit.actor_of(user), target=f"user:{user.id}",
                 contract_id=user.contract_id, old=old_email, new=change.new_email,
                 requested_by=change.ticket.issued_by)
    try:
        db.session.commit()
    except IntegrityError:
        # Someone registered the address between the check and the commit: the unique
        # index decides, the whole change (ticket use included) is rolled back.
        db.session.rollback()
        raise AccountError("email_taken") from None
    revoke_access_tokens(*digests)
    if notice is not None:
        mail.deliver(notice)  # never raises; a mail not sent stays queued for a retry
    return change
