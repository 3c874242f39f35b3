"""What owners and admins do to the users of their contract (SPEC §10, users part).

Every lookup takes the caller's contract: a user of another contract is simply not found,
so no page or action can reach across tenants whatever id is typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select

from . import audit, contracts, tickets
from .accounts import (
    AccountError,
    normalise_email,
    reset_two_step,
    valid_email,
    without_controls,
)
from .clock import now
from .db import db
from .mfa import remember
from .models import MailMessage, User

PAGE_SIZE = 20
#: Roles the console can give or take; the owner's role is fixed.
ASSIGNABLE_ROLES = ("admin", "user")
_MAX_QUERY = 200
_MAX_ID = 64


@dataclass(frozen=True)
class Page:
    users: list[User]
    total: int
    page: int
    pages: int


def find(caller: User, user_id: str) -> User | None:
    """The user ``user_id`` if it belongs to the caller's contract, else None."""
    if not user_id or len(user_id) > _MAX_ID:
        return None
    return db.session.scalar(select(User).where(User.id == user_id,
                                                User.contract_id == caller.contract_id))


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(caller: User, query: str, page: int, *, per_page: int = PAGE_SIZE) -> Page:
    """Users of the caller's contract whose email or name contains ``query``."""
    where = [User.contract_id == caller.contract_id]
    query = without_controls(query).strip()[:_MAX_QUERY]
    if query:
        pattern = _like(query)
        where.append(or_(User.email.ilike(pattern, escape="\\"),
                         User.name.ilike(pattern, escape="\\")))
    total = db.session.scalar(select(func.count()).select_from(User).where(*where)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    users = list(db.session.scalars(
        select(User).where(*where).order_by(User.created_at, User.email)
        .offset((page - 1) * per_page).limit(per_page)
    ))
    return Page(users, total, page, pages)


def _not_owner_nor_self(caller: User, target: User) -> None:
    if target.role == "owner":
        raise AccountError("admin_owner_fixed")
    if target.id == caller.id:
        raise AccountError("admin_not_yourself")


def change_role(caller: User, target: User, role: str) -> list[str]:
    """Make ``target`` an admin or a user; returns access-token digests to delete after
    the commit (a demoted admin signs in again, so no token keeps the old role)."""
    if role not in ASSIGNABLE_ROLES:
        raise AccountError("admin_role_invalid")
    _not_owner_nor_self(caller, target)
    previous = target.role
    if previous == role:
        return []
    target.role = role
    target.updated_at = now()
    digests: list[str] = []
    if previous == "admin":
        digests = contracts.revoke_user_access([target.id])
    audit.record("user.role_changed", actor=audit.actor_of(caller), target=f"user:{target.id}",
                 contract_id=target.contract_id, previous=previous, role=role)
    db.session.commit()
    return digests


def disable(caller: User, target: User) -> list[str]:
    """Disable ``target`` and cut off every session, token and mailed link it has.

    Returns the access-token digests to delete from the store after the commit.
    """
    _not_owner_nor_self(caller, target)
    if target.status != "active":
        raise AccountError("admin_not_active")
    target.status = "disabled"
    target.updated_at = now()
    tickets.void(target)
    digests = contracts.revoke_user_access([target.id])
    audit.record("user.disabled", actor=audit.actor_of(caller), target=f"user:{target.id}",
                 contract_id=target.contract_id)
    db.session.commit()
    return digests


def enable(caller: User, target: User) -> None:
    _not_owner_nor_self(caller, target)
    if target.status != "disabled":
        raise AccountError("admin_not_disabled")
    target.status = "active"
    target.updated_at = now()
    audit.record("user.enabled", actor=audit.actor_of(caller), target=f"user:{target.id}",
                 contract_id=target.contract_id)
    db.session.commit()


def reset_enrolment(caller: User, target: User) -> MailMessage | None:
    """Reset ``target``'s 2-step enrolment (a lost phone); commits. Returns the notice mail
    to deliver, or None when nothing was enrolled.

    Never the owner's (the owner resets their own through the settings menu, manual 5.2)
    nor the caller's own: a stolen console session must not be enough to swap the
    caller's second factor for one the thief holds.
    """
    _not_owner_nor_self(caller, target)
    if target.status == "invited":
        raise AccountError("admin_not_active")
    notice = reset_two_step(target, reason="admin", actor=caller)
    db.session.commit()
    return notice


def _owner_only_by_owner(caller: User, target: User) -> None:
    """The owner's sessions and browsers are the owner's to end: an admin (or a stolen
    admin session) must not be able to sign the contract's owner out at will. The owner
    may do it to their own account (a lost laptop), as may anyone to their own."""
    if target.role == "owner" and caller.id != target.id:
        raise AccountError("admin_owner_fixed")


def sign_out_everywhere(caller: User, target: User) -> list[str]:
    """End every session, refresh token and access token of ``target``; commits.

    Returns the access-token digests to delete from the store after the commit. The user
    stays active and signs in again as usual.
    """
    _owner_only_by_owner(caller, target)
    if target.status == "invited":
        raise AccountError("admin_not_active")
    digests = contracts.revoke_user_access([target.id])
    audit.record("user.sessions_revoked", actor=audit.actor_of(caller),
                 target=f"user:{target.id}", contract_id=target.contract_id,
                 access_tokens=len(digests))
    db.session.commit()
    return digests


def remembered_browsers(target: User) -> int:
    """How many live remembered browsers ``target`` has (skipping 2-step verification)."""
    return len(remember.listing(target))


def forget_browsers(caller: User, target: User) -> int:
    """Forget every remembered browser of ``target`` (2-step verification is asked again
    at their next sign-in everywhere); commits. How many were live."""
    _owner_only_by_owner(caller, target)
    count = remember.revoke_all(target)
    audit.record("mfa.browsers_revoked_by_admin", actor=audit.actor_of(caller),
                 target=f"user:{target.id}", contract_id=target.contract_id, count=count)
    db.session.commit()
    return count


# -- the email form (manual 2.2: an address change, or a login-method change link) --------


def email_form_choice(target: User, typed: str) -> tuple[str, bool]:
    """What the console's email form asks for ``target``: ``(address, changed)``. A changed
    address means an email-change link to it, the same one a login-method-change link.
    ``AccountError`` (a message key) when neither can be sent."""
    if target.role == "owner":
        raise AccountError("admin_owner_uses_settings")  # the owner's own settings menu
    if target.status != "active":
        raise AccountError("admin_not_active")
    address = normalise_email(typed)
    changed = address != target.email
    if changed and not valid_email(address):
        raise AccountError("admin_email_invalid")
    return address, changed


def send_email_form(caller: User, target: User, address: str, changed: bool) -> MailMessage:
    """Issue the link ``email_form_choice`` chose and queue its mail, in the caller's
    transaction. Under the user's row lock the domain functions check again that the
    other change is not under way (two admins at once cannot start both)."""
    from . import email_change
    from . import login_method_change as method_change

    method_change.lock_user(target)
    if changed:
        return email_change.request(target, address, actor=caller, lang=target.locale)
    return method_change.request(target, actor=caller, lang=target.locale)
