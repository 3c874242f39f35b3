"""Invitations (利用者登録, SPEC §6): an admin invites, the invitee registers by the link.

The invitee's chosen password never travels back to the browser: between the password
page and the confirmation page only its argon2id hash is kept, in the ephemeral store,
under a key derived from the ticket, with a nonce the confirmation form must echo.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from . import audit, contracts, tickets
from .accounts import AccountError, normalise_email, valid_email
from .clock import now
from .db import db
from .models import Contract, MailMessage, Ticket, User
from .models.user import LANGUAGES
from .notify import mail
from .passwords import check_new as check_new_password
from .security import hash_password, random_token, sha256_hex
from .web import brand_url, language, settings

#: Roles an owner or admin may give (a contract has exactly one owner).
INVITABLE_ROLES = ("admin", "user")
#: How long a typed password waits for its confirmation (seconds).
STAGE_TTL = 900
_STAGE_PREFIX = "invitation:pw:"
MAX_NAME = 200


@dataclass(frozen=True)
class Invited:
    user: User
    message: MailMessage
    #: True when the address was already invited to this contract: the mail was resent.
    resent: bool


def _store():
    return current_app.extensions["idp.store"]


def _validate(name: str, email: str, role: str, lang: str) -> tuple[str, str]:
    """Normalised (name, email); raises ``AccountError`` with an ``idp.i18n`` key."""
    name = " ".join(name.split())
    if not name:
        raise AccountError("admin_name_required")
    if len(name) > MAX_NAME:
        raise AccountError("admin_name_too_long")
    address = normalise_email(email)
    if not valid_email(address):
        raise AccountError("admin_email_invalid")
    if role not in INVITABLE_ROLES:
        raise AccountError("admin_role_invalid")
    if lang not in LANGUAGES:
        raise AccountError("admin_lang_invalid")
    return name, address


def invite(actor: User, *, name: str, email: str, role: str, lang: str) -> Invited:
    """Create the invited user, ticket, mail and audit event in the session (caller commits).

    Inviting an address that is still an open invitation of the same contract resends it,
    so a double submit or a second try never errors or creates a second user.
    """
    name, address = _validate(name, email, role, lang)
    existing = _registered(actor, address)
    if existing is not None:
        return _resend_or_refuse(actor, existing)
    t = now()
    user = User(contract_id=actor.contract_id, brand=actor.brand, email=address, name=name,
                role=role, status="invited", login_method="password", password_hash=None,
                locale=lang, created_at=t, updated_at=t)
    db.session.add(user)
    try:
        # Flush now: of two concurrent invitations of one address, the unique index
        # lets one in; the other then sees it like a second submit.
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        existing = _registered(actor, address)
        if existing is None:
            raise
        return _resend_or_refuse(actor, existing)
    message = _send(actor, user)
    audit.record("user.invited", actor=audit.actor_of(actor), target=f"user:{user.id}",
                 contract_id=user.contract_id, email=address, role=role, lang=lang)
    return Invited(user, message, resent=False)


def _registered(actor: User, address: str) -> User | None:
    return db.session.scalar(select(User).where(User.brand == actor.brand,
                                                User.email == address))


def _resend_or_refuse(actor: User, existing: User) -> Invited:
    if existing.contract_id == actor.contract_id and existing.status == "invited":
        return Invited(existing, resend(actor, existing), resent=True)
    # The login ID is unique per brand, whichever contract holds it.
    raise AccountError("admin_email_taken")


def resend(actor: User, user: User) -> MailMessage:
    """A new invitation link (the old one stops working); the caller commits."""
    if user.status != "invited":
        raise AccountError("admin_not_invited")
    message = _send(actor, user)
    audit.record("user.invitation_resent", actor=audit.actor_of(actor),
                 target=f"user:{user.id}", contract_id=user.contract_id, email=user.email)
    return message


def cancel(actor: User, user: User) -> None:
    """Withdraw an invitation not yet completed; the caller commits.

    The invited user row goes, and with it (ON DELETE CASCADE) its link; the address is
    free to be invited again. One conditional DELETE: if the invitee completed the
    registration a moment earlier, the row is active and nothing is deleted.
    """
    result = db.session.execute(
        delete(User).where(User.id == user.id, User.status == "invited")
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise AccountError("admin_not_invited")
    audit.record("user.invitation_cancelled", actor=audit.actor_of(actor),
                 target=f"user:{user.id}", contract_id=user.contract_id, email=user.email)


def _send(actor: User, user: User) -> MailMessage:
    issued = tickets.issue("invitation", user, issued_by=audit.actor_of(actor))
    b = settings().brands[user.brand]
    return mail.queue("invitation", to=user.email, brand=b, lang=user.locale, name=user.name,
                      inviter_email=actor.email,
                      url=brand_url(b, "invitation.register", ticket=issued.token))


# -- the invitee's side ------------------------------------------------------------------


def open_ticket(token: str | None, *, brand_id: str) -> tuple[Ticket, User, Contract]:
    """The live invitation for ``token`` on this brand's host; raises ``TicketError``."""
    ticket, user = tickets.open_link(token, "invitation", brand_id=brand_id)
    if user.status != "invited":
        raise tickets.TicketError("used")
    contract = db.session.get(Contract, user.contract_id)
    if contract is None or not contracts.usable(contract):
        raise AccountError("invitation_contract_unusable")
    return ticket, user, contract


def _stage_key(ticket: Ticket) -> str:
    # Derived from the stored hash, not the token: the store never sees the link itself.
    return _STAGE_PREFIX + sha256_hex("invitation-password:" + ticket.token_hash)


def stage_password(ticket: Ticket, user: User, password: str, confirmation: str) -> str:
    """Check the password and keep its hash until confirmed; returns the nonce for the
    confirmation form. Raises ``PolicyViolation`` (its key names the problem)."""
    password = check_new_password(password, confirmation, email=user.email)
    nonce = random_token(16)
    # Only reads happened in this request so far: the store may write (SQLite lock rule).
    _store().put(_stage_key(ticket), {"hash": hash_password(password), "nonce": nonce,
                                      "expires_at": now() + STAGE_TTL}, STAGE_TTL)
    return nonce


def staged_hash(ticket: Ticket, nonce: str) -> str | None:
    """The hash staged for this ticket if ``nonce`` is the latest one, else None."""
    record = _store().get(_stage_key(ticket))
    # The app's clock decides, as for tickets; the store's own expiry only cleans up.
    if not record or not nonce or record.get("expires_at", 0) <= now():
        return None
    if not hmac.compare_digest(str(record.get("nonce", "")).encode(), nonce.encode()):
        return None
    return str(record["hash"])


def complete(token: str, user: User, password_hash: str) -> User:
    """Use the ticket and activate the user with the staged password, in one transaction.

    Raises ``TicketError`` when another request used the ticket first.
    """
    ticket = tickets.use(token, "invitation")
    t = now()
    try:
        user.password_hash = password_hash
        user.login_method = "password"
        user.status = "active"
        user.locale = language()  # the language the invitee registered in
        user.password_changed_at = t
        user.updated_at = t
        audit.record("user.registered", actor=f"user:{user.id}", target=f"user:{user.id}",
                     contract_id=user.contract_id, login_method="password")
        db.session.commit()
    except Exception:
        db.session.rollback()  # the ticket stays usable when nothing was registered
        raise
    _store().delete(_stage_key(ticket))
    return user
