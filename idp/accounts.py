"""Contracts and users: creation, passwords, and the resets several flows share."""

from __future__ import annotations

from .clock import now
from .db import db
from .mfa import enrolment
from .models import Contract, MailMessage, User
from .models.contract import PLANS, TRIAL_DAYS
from .models.user import ROLES
from .passwords import check as check_password_policy
from .security import hash_password


class AccountError(ValueError):
    """A request that cannot be carried out, with a message for the operator."""


def normalise_email(email: str) -> str:
    """NFKC (full-width input), trimmed, lower case: the login ID as stored."""
    import unicodedata

    return unicodedata.normalize("NFKC", email).strip().lower()


def valid_email(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return (bool(at) and bool(local) and "." in domain and not domain.startswith(".")
            and not domain.endswith(".") and len(email) <= 320
            and not any(c.isspace() for c in email) and without_controls(email) == email)


def without_controls(text: str) -> str:
    """``text`` without control characters (NUL and the like): what is typed into a
    search or filter box is matched as text, and PostgreSQL refuses a NUL outright."""
    import unicodedata

    return "".join(c for c in text if unicodedata.category(c) != "Cc")


def _normalise_email(email: str) -> str:
    email = normalise_email(email)
    if not valid_email(email):
        raise AccountError(f"not an email address: {email!r}")
    return email


def set_password(user: User, password: str) -> None:
    """Apply the policy (raises ``idp.passwords.PolicyViolation``) and store the hash."""
    password = check_password_policy(password, email=user.email)
    user.password_hash = hash_password(password)
    user.password_changed_at = now()
    user.updated_at = now()


def reset_two_step(user: User, *, reason: str, actor: User | None) -> MailMessage | None:
    """The user enrols 2-step verification again at the next sign-in (SPEC §4.6).

    ``idp.mfa.enrolment.reset`` does it (factors, recovery code, remembered browsers, the
    mark, audit) in the caller's transaction and returns the notice mail, which the caller
    delivers after its commit. ``reason``: one of ``idp.mfa.enrolment.REASONS``.
    """
    return enrolment.reset(user, reason=reason, actor=actor)


def create_contract(*, brand: str, plan: str, owner_email: str, owner_password: str | None,
                    name: str = "", owner_name: str = "",
                    two_step: bool = True) -> tuple[Contract, User]:
    from flask import current_app

    if brand not in current_app.extensions["idp.settings"].brands:
        raise AccountError(f"unknown brand {brand!r}")
    if plan not in PLANS:
        raise AccountError(f"plan must be one of {', '.join(PLANS)}")
    t = now()
    contract = Contract(brand=brand, plan=plan, name=name, created_at=t,
                        two_step_enabled=two_step,
                        trial_ends_at=t + TRIAL_DAYS * 86400 if plan == "trial" else None)
    try:
        db.session.add(contract)
        db.session.flush()
        owner = _new_user(contract, email=owner_email, role="owner", password=owner_password,
                          name=owner_name)
        db.session.commit()
    except Exception:
        # Neither half of a contract without its owner may stay in the session.
        db.session.rollback()
        raise
    return contract, owner


def create_user(*, contract_id: str, email: str, role: str, password: str | None,
                name: str = "") -> User:
    contract = db.session.get(Contract, contract_id)
    if contract is None:
        raise AccountError(f"no contract {contract_id!r}")
    if role not in ROLES or role == "owner":
        raise AccountError("role must be admin or user (a contract has exactly one owner)")
    try:
        user = _new_user(contract, email=email, role=role, password=password, name=name)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return user


def _new_user(contract: Contract, *, email: str, role: str, password: str | None,
              name: str) -> User:
    email = _normalise_email(email)
    if db.session.query(User).filter_by(brand=contract.brand, email=email).first():
        raise AccountError(f"{email} is already registered for brand {contract.brand}")
    t = now()
    user = User(
        contract_id=contract.id, brand=contract.brand, email=email, name=name, role=role,
        login_method="password", password_hash=hash_password(password) if password else None,
        created_at=t, updated_at=t,
    )
    db.session.add(user)
    db.session.flush()
    return user
