"""Contract state, the settings-menu permission table (SPEC §2), and cutting users off.

A trial ends by the clock alone: ``state`` derives it from ``trial_ends_at``, so no job has
to run for a trial to stop working, and every check reads the same function.
"""

from __future__ import annotations

from sqlalchemy import select, update

from .clock import now
from .db import db
from .models import Contract, RefreshToken, User
from .models.contract import PLAN_CHANGE_GRACE_DAYS

#: Settings-menu items in menu order (認証・契約情報変更メニュー).
ITEMS = ("login_method", "email_change", "password_change", "access_route", "two_step",
         "active_directory", "contract_details", "plan_change", "cancellation")

#: SPEC §2 as data: item -> (basic owner, basic others, trial owner, trial others).
#: ``password_change`` is further limited to password users, ``plan_change`` for a trial
#: to its window; both in ``allowed``.
TABLE: dict[str, tuple[bool, bool, bool, bool]] = {
    "login_method":     (True, False, False, False),
    "email_change":     (True, False, False, False),
    "password_change":  (True, True, True, True),
    "access_route":     (True, False, True, False),
    "two_step":         (True, False, True, False),
    "active_directory": (True, False, True, False),
    "contract_details": (True, False, False, False),
    "plan_change":      (True, False, True, False),
    "cancellation":     (True, False, False, False),
}


def state(contract: Contract, t: int | None = None) -> str:
    """``active``, ``trial_ended`` (plan change still possible), ``expired`` or ``cancelled``."""
    if contract.status == "cancelled":
        return "cancelled"
    if contract.plan == "trial" and contract.trial_ends_at is not None:
        t = now() if t is None else t
        if t >= contract.trial_ends_at:
            if t < contract.trial_ends_at + PLAN_CHANGE_GRACE_DAYS * 86400:
                return "trial_ended"
            return "expired"
    return "active"


def usable(contract: Contract | None) -> bool:
    """May the contract's users sign in and use their tokens?"""
    return contract is not None and state(contract) == "active"


def allowed(item: str, user: User, contract: Contract) -> bool:
    """May ``user`` use settings item ``item`` now? The one check both menu and pages use."""
    if item not in TABLE:
        return False
    current = state(contract)
    if current == "trial_ended":
        # An ended trial leaves its owner exactly one door: the change to basic.
        return item == "plan_change" and user.role == "owner"
    if current != "active":
        return False
    column = (0 if contract.plan == "basic" else 2) + (0 if user.role == "owner" else 1)
    if not TABLE[item][column]:
        return False
    if item == "password_change":
        return user.login_method == "password"
    return True


def menu(user: User, contract: Contract) -> list[str]:
    return [item for item in ITEMS if allowed(item, user, contract)]


def user_usable(user: User | None, *, epoch: int | None = None) -> bool:
    """Active user of a usable contract, and (for a session or token) issued under the
    user's current ``session_epoch``."""
    if user is None or user.status != "active":
        return False
    if epoch is not None and epoch != user.session_epoch:
        return False
    return usable(db.session.get(Contract, user.contract_id))


def revoke_user_access(user_ids: list[str]) -> list[str]:
    """Void every session, refresh token and access token of these users.

    Sessions and access tokens live in the ephemeral store and cannot be listed per user,
    so bumping ``session_epoch`` voids them where they are checked; refresh tokens are
    revoked outright. Adds to the caller's transaction and returns the digests of the
    access tokens issued with refresh tokens: the caller deletes them from the store with
    ``idp.oauth.tokens.revoke_access_tokens`` after committing (on SQLite the store must
    not write while the ORM holds the write lock).
    """
    if not user_ids:
        return []
    digests = [d for d in db.session.scalars(
        select(RefreshToken.access_token_hash).where(RefreshToken.user_id.in_(user_ids))
    ) if d]
    t = now()
    db.session.execute(update(User).where(User.id.in_(user_ids))
                       .values(session_epoch=User.session_epoch + 1)
                       .execution_options(synchronize_session="fetch"))
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id.in_(user_ids), RefreshToken.revoked_at.is_(None))
        .values(revoked_at=t)
    )
    return digests


def contract_user_ids(contract: Contract) -> list[str]:
    return list(db.session.scalars(select(User.id).where(User.contract_id == contract.id)))
