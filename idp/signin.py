"""Password sign-in as every sign-in page uses it (login page, settings menu).

One function decides whether an email + password is a sign-in, so lockout, rate limits,
device cookies and the contract checks apply wherever a password is typed.

What an attacker can learn is kept to nothing: an unknown address, a wrong password, a
locked, invited or disabled account and a user of another login method all get the same
answer after the same one argon2 hash. Only someone who typed the right password learns
that the contract has ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from . import audit, contracts, known_devices, lockout
from .accounts import normalise_email, valid_email
from .db import db
from .models import Contract, MailMessage, User
from .notify import mail
from .ratelimit import Limit
from .security import hash_password, needs_rehash, verify_password
from .web import brand, client_address, language

#: The answer to every failed sign-in, whatever the reason (no user enumeration).
FAILED = "signin_failed"
RATE_LIMITED = "signin_rate_limited"


@dataclass(frozen=True)
class SignInResult:
    """The signed-in user, or why not: ``error`` is an ``idp.i18n`` key for the page."""

    user: User | None
    error: str | None = None
    status: int = 200
    #: Seconds to send as ``Retry-After`` when rate limited.
    retry_after: int | None = None
    #: ``contracts.state`` when the right password met an ended contract (the page
    #: explains it; ``error`` is its message key).
    contract_state: str | None = None
    #: The owner of a trial that ended within the plan-change window (the page offers the
    #: settings menu).
    can_change_plan: bool = False


def _settings():
    return current_app.extensions["idp.settings"]


def address_limit() -> Limit:
    s = _settings()
    return Limit("signin-failures-address", s.login_failures_per_address, s.rate_window)


def account_limit() -> Limit:
    s = _settings()
    return Limit("signin-attempts-account", s.login_attempts_per_account, s.rate_window)


def password_sign_in(email: str, password: str, *,
                     admit_ended_trial_owner: bool = False) -> SignInResult:
    """Check the credentials and record the outcome; on success the caller starts its session.

    Commits what it records (counters, lock, audit); call it with no uncommitted writes in
    the session. ``admit_ended_trial_owner``: the settings menu lets the owner of a trial
    that ended within the plan-change window in, to change the plan.
    """
    typed = normalise_email(email)
    this_brand = brand().id
    user = db.session.scalar(select(User).where(User.brand == this_brand, User.email == typed))
    address = client_address()
    device = known_devices.nonce_for(user.id) if user is not None else None

    if device is None:
        # A browser the account never signed in from: the limits apply before any hash,
        # keyed by what was typed so that unknown accounts behave like known ones.
        refused = _rate_limited(address, f"{this_brand}:{typed}", user)
        if refused is not None:
            return refused

    right = verify_password(password, user.password_hash if user is not None else None)
    reason = _refusal(user, right, device)
    if reason is not None:
        return _failed(user, reason, device=device, address=address, typed=typed,
                       right=right)
    assert user is not None
    return _succeeded(user, password, device=device, admit_owner=admit_ended_trial_owner)


def _rate_limited(address: str, account_key: str, user: User | None) -> SignInResult | None:
    """429 before any hash when this address failed too often (its failures are counted
    in ``_failed``) or this account was tried too often (every attempt counts, here)."""
    by_address, by_account = address_limit(), account_limit()
    if by_address.exceeded(address):
        return _refuse(by_address, address, user)
    if by_account.hit(account_key) > by_account.limit:
        return _refuse(by_account, account_key, user)
    return None


def _refuse(limit: Limit, subject: str, user: User | None) -> SignInResult:
    if limit.first_refusal(subject):
        audit.record("signin.rate_limited", actor="anonymous",
                     target=f"user:{user.id}" if user else "",
                     contract_id=user.contract_id if user else None, limit=limit.name)
        db.session.commit()
    return SignInResult(None, RATE_LIMITED, 429, retry_after=limit.retry_after())


def _refusal(user: User | None, right: bool, device: str | None) -> str | None:
    if user is None:
        return "unknown_account"
    if not right:
        return "wrong_password"
    if user.status != "active":
        return "inactive"
    if user.login_method != "password":
        return "not_password_user"
    if lockout.is_locked(user) and device is None:
        # The right password, but the account is locked for unknown browsers: the same
        # answer as a wrong one, or a locked account would confirm a guessed password.
        return "locked"
    return None


def _failed(user: User | None, reason: str, *, device: str | None, address: str, typed: str,
            right: bool) -> SignInResult:
    # Store first: on SQLite the store must not wait for this session's write lock.
    if device is not None:
        known_devices.record_failure(device)
    else:
        address_limit().hit(address)
    message: MailMessage | None = None
    counts = (user is not None and reason == "wrong_password" and device is None
              and user.status == "active" and user.login_method == "password")
    if counts:
        assert user is not None
        message = lockout.register_failure(user)
    details: dict[str, object] = {"reason": reason, "known_browser": device is not None}
    if user is None and valid_email(typed):
        # Only what looks like an address: a password typed into the email field by
        # mistake must not end up in the log.
        details["email"] = typed
    audit.record("signin.failure", actor="anonymous",
                 target=f"user:{user.id}" if user else "",
                 contract_id=user.contract_id if user else None, **details)
    db.session.commit()
    if message is not None:
        # Beside the response: the tenth failure must not take longer for a real account
        # than for an unknown one. A failed delivery stays queued and is retried.
        mail.deliver_in_background(message)
    return SignInResult(None, FAILED, 401)


def _succeeded(user: User, password: str, *, device: str | None,
               admit_owner: bool) -> SignInResult:
    contract = db.session.get(Contract, user.contract_id)
    state = contracts.state(contract) if contract is not None else "cancelled"
    # A right password ends a run of wrong ones, whatever happens next.
    user.failed_logins = 0
    if state != "active":
        owner_window = state == "trial_ended" and user.role == "owner"
        if not (owner_window and admit_owner):
            audit.record("signin.failure", actor=audit.actor_of(user), target=f"user:{user.id}",
                         contract_id=user.contract_id, reason=f"contract_{state}")
            db.session.commit()
            key = "signin_trial_ended_owner" if owner_window else f"signin_contract_{state}"
            return SignInResult(None, key, 403, contract_state=state,
                                can_change_plan=owner_window)
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    # ``last_login_at`` is set when the whole sign-in completes (``idp.flow``): the step-up
    # chain's 30-day rule reads the previous one, and a password alone is no sign-in.
    # Mails nobody asks for in a browser (the lock notice) go in the language last used.
    user.locale = language()
    audit.record("signin.success", actor=audit.actor_of(user), target=f"user:{user.id}",
                 contract_id=user.contract_id, method="password",
                 known_browser=device is not None)
    db.session.commit()
    known_devices.remember(user.id, replaces=device)
    return SignInResult(user)
