"""2-step enrolment resets (SPEC §4.6) and what the console shows of an enrolment.

A password reset, an email change, a login-method change or an admin's reset ends the
user's enrolment: factors are deleted, the recovery code is voided, remembered browsers
are revoked and ``two_step_reset_at`` is set, so the step-up chain enrols again at the
next sign-in. Everything happens in the caller's transaction; the notice mail is queued
there too and returned for the caller to deliver after its commit.

This lives beside the factors it removes rather than in ``idp.accounts``, which only
forwards to it: the flows keep calling ``accounts.reset_two_step``, and the 2-step rules
(what counts as enrolled, the contract's keep policy) stay in one place in ``idp.mfa``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, func, select

from .. import audit
from ..clock import now
from ..db import db
from ..models import Contract, Factor, MailMessage, RecoveryCode, UsedTotpStep, User
from ..notify import mail
from . import phone, recovery, remember

#: What can reset an enrolment; the notice mail names it in words.
REASONS = ("password_reset", "email_change", "login_method_change", "admin")
#: The notice mail's kind (``idp/templates/mail/two_step_reset.<lang>.txt``).
MAIL_KIND = "two_step_reset"


@dataclass(frozen=True)
class Enrolled:
    """An enrolled (confirmed) factor as the console shows it: never a secret, and the
    phone only masked."""

    type: str
    enrolled_at: int
    #: ``+81 90-****-5678`` for SMS, None otherwise.
    masked_phone: str | None


def enrolled(user: User) -> list[Enrolled]:
    """The user's confirmed factors, the most recently enrolled first."""
    rows = db.session.scalars(
        select(Factor).where(Factor.user_id == user.id, Factor.confirmed_at.is_not(None))
        .order_by(Factor.confirmed_at.desc(), Factor.id.desc()))
    return [Enrolled(row.type, row.confirmed_at or row.created_at, _masked(row.phone))
            for row in rows]


def confirmed_factor(user: User, factor_type: str) -> Factor | None:
    """The user's enrolled factor of ``factor_type``: confirmed, and not before the last
    enrolment reset (a reset deletes factors; the mark also covers one racing it)."""
    reset = user.two_step_reset_at or 0
    return db.session.scalar(
        select(Factor).where(Factor.user_id == user.id, Factor.type == factor_type,
                             Factor.confirmed_at.is_not(None), Factor.confirmed_at >= reset)
        .order_by(Factor.id.desc()).limit(1))


def _masked(number: str | None) -> str | None:
    if not number:
        return None
    try:
        return phone.mask(number)
    except ValueError:  # not E.164 (hand-edited row): show nothing rather than all of it
        return "****"


def keeps_enrolment(user: User, reason: str) -> bool:
    """Whether ``reason`` leaves the enrolment in place for this user.

    Only a password reset, and only under the contract's ``two_step_keep_on_reset``
    policy: such contracts want a reset link (whoever reads the mailbox) not to be enough
    to pass 2-step verification, so only an admin resets the enrolment there. An email or
    login-method change always resets it (the person or the way of signing in changed).
    """
    if reason != "password_reset":
        return False
    contract = db.session.get(Contract, user.contract_id)
    return contract is not None and contract.two_step_keep_on_reset


def reset(user: User, *, reason: str, actor: User | None) -> MailMessage | None:
    """Reset the user's 2-step enrolment in the caller's transaction (see the module).

    Returns the queued notice mail for the caller to ``mail.deliver`` after its commit,
    or None when there is nothing to tell: the user had no confirmed factor (nothing they
    relied on went away), or the contract's policy kept the enrolment.
    """
    if reason not in REASONS:
        raise ValueError(f"unknown 2-step reset reason {reason!r}")
    who = audit.actor_of(actor) if actor is not None else "system"
    # Serialises with an enrolment finishing at the same moment (recovery.issue takes the
    # same lock on PostgreSQL): it lands either before the reset, and goes, or after it.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())

    if keeps_enrolment(user, reason):
        # Factors and the recovery code stay, and so does two_step_reset_at (the chain
        # would take a new mark for a reset). Remembered browsers still go: a reset
        # signals a possible compromise, so every browser shows the factor again. No
        # notice: the enrolment the user relies on is unchanged, the reset was theirs
        # (through their mailbox), and the reset pages say the enrolment is kept.
        browsers = remember.revoke_all(user)
        audit.record("mfa.reset_kept", actor=who, target=f"user:{user.id}",
                     contract_id=user.contract_id, reason=reason,
                     policy="two_step_keep_on_reset", browsers=browsers)
        return None

    factors = list(db.session.execute(
        select(Factor.id, Factor.confirmed_at).where(Factor.user_id == user.id)))
    confirmed = sum(1 for _, at in factors if at is not None)
    ids = [factor_id for factor_id, _ in factors]
    if ids:
        # The cascade of the foreign key is not enforced on SQLite: removed explicitly.
        db.session.execute(delete(UsedTotpStep).where(UsedTotpStep.factor_id.in_(ids))
                           .execution_options(synchronize_session=False))
        db.session.execute(delete(Factor).where(Factor.id.in_(ids))
                           .execution_options(synchronize_session=False))
    codes = db.session.scalar(
        select(func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
               RecoveryCode.voided_at.is_(None))) or 0
    recovery.void_all(user)
    browsers = remember.revoke_all(user)
    user.two_step_reset_at = now()

    message = None
    if confirmed:
        brand = current_app.extensions["idp.settings"].brands[user.brand]
        # To the user's current address in the user's own language: nobody asked for this
        # mail in a browser (an admin's reset, a link opened days later).
        message = mail.queue(MAIL_KIND, to=user.email, brand=brand, lang=user.locale,
                             name=user.name, reason=reason)
    audit.record("mfa.reset", actor=who, target=f"user:{user.id}",
                 contract_id=user.contract_id, reason=reason, factors=len(ids),
                 confirmed_factors=confirmed, recovery_codes=codes, browsers=browsers,
                 notified=message is not None)
    return message
