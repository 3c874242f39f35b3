"""Login-method change by a link an admin sends (SPEC §6; manual 2.2 (1)).

The admin sends it from the console by leaving the user's email unchanged; the user opens
the link and picks a method. It cannot be under way together with an email change
(manual: finish the email change first), and never applies to the owner, who changes
their own method in the settings menu.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update

from . import accounts, audit, contracts, tickets
from .accounts import AccountError
from .clock import now
from .db import db
from .email_change import live_ticket
from .models import Contract, MailMessage, Ticket, User
from .notify import mail
from .web import brand_url, settings

KIND = "login_method_change"


def lock_user(user: User) -> None:
    """Serialise requests about one user until the caller commits.

    Writing the row takes PostgreSQL's row lock and SQLite's write lock, so two admins
    sending an email change and a login-method change at once cannot both pass the
    "nothing else under way" check.
    """
    db.session.execute(update(User).where(User.id == user.id).values(updated_at=now())
                       .execution_options(synchronize_session=False))


def request(user: User, *, actor: User, lang: str) -> MailMessage:
    """Issue the ticket, queue its mail and audit, in the session; the caller commits.

    Raises ``AccountError`` whose message is an ``idp.i18n`` key.
    """
    if user.role == "owner":
        raise AccountError("admin_owner_uses_settings")
    if user.status != "active":
        raise AccountError("admin_not_active")
    if live_ticket(user, "email_change") is not None:
        raise AccountError("admin_method_change_while_email_change")
    issued = tickets.issue(KIND, user, issued_by=audit.actor_of(actor))
    b = settings().brands[user.brand]
    message = mail.queue(KIND, to=user.email, brand=b, lang=lang, name=user.name,
                         url=brand_url(b, "login_method.change", ticket=issued.token))
    audit.record("login_method.change_requested", actor=audit.actor_of(actor),
                 target=f"user:{user.id}", contract_id=user.contract_id)
    return message


def open_ticket(token: str | None, *, brand_id: str) -> tuple[Ticket, User, Contract]:
    """The live ticket, its user and contract; raises ``TicketError`` or ``AccountError``."""
    ticket, user = tickets.open_link(token, KIND, brand_id=brand_id)
    contract = db.session.get(Contract, user.contract_id)
    if user.status != "active" or contract is None or not contracts.usable(contract):
        raise AccountError("login_method_unavailable")
    return ticket, user, contract


def method_name(method: str) -> str:
    """The method's display name in the request's language (its id if it has none)."""
    from .i18n import method_label

    return method_label(method)


def ad_available(user: User, contract: Contract) -> bool:
    """AD is offered once the contract has set it up, and never to the owner (SPEC §3)."""
    return bool(contract.connection_id) and user.role != "owner"


@dataclass(frozen=True)
class Changed:
    """What the caller finishes after the commit of ``change_to_password``."""

    #: Access-token digests to delete from the store.
    digests: list[str]
    #: The 2-step reset notice to deliver, if the user had a factor enrolled.
    notice: MailMessage | None


def change_to_password(token: str, user: User, password: str) -> Changed:
    """Use the ticket and make ``password`` the user's method, in one transaction.

    The caller has checked the policy already; ``set_password`` checks it again. Once
    committed, the caller deletes the returned access tokens, then delivers the notice.
    """
    previous = user.login_method
    tickets.use(token, KIND)
    try:
        accounts.set_password(user, password)
        user.login_method = "password"
        # Proving control of the mailbox is what a reset proves too: the lock goes with it.
        user.failed_logins = 0
        user.locked_at = None
        notice = accounts.reset_two_step(user, reason="login_method_change", actor=user)
        digests = contracts.revoke_user_access([user.id])
        audit.record("login_method.changed", actor=f"user:{user.id}",
                     target=f"user:{user.id}", contract_id=user.contract_id,
                     previous=previous, login_method="password")
        db.session.commit()
    except Exception:
        # Nothing half-done: the ticket stays usable if the change did not happen.
        db.session.rollback()
        raise
    return Changed(digests, notice)
