"""Changes the owner makes to the contract from the settings menu (SPEC §2, §7, §8).

Each function changes the contract and records the audit event in the caller's
transaction; the caller commits once. Changes that two browsers could race on (plan
change, cancellation) are one conditional UPDATE, so exactly one of them wins and is
audited.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from . import audit, contracts
from .accounts import normalise_email, valid_email
from .clock import now
from .db import db
from .models import Contract, Ticket, User
from .models.contract import ACCESS_ROUTES, new_connection_id


def _actor(user: User) -> str:
    return audit.actor_of(user)


def _target(contract: Contract) -> str:
    return f"contract:{contract.id}"


def two_step_in_force(contract: Contract) -> bool:
    """Whether 2-step verification applies: ``line-only`` switches it off (SPEC §7, §8).

    The owner's own choice is kept in ``two_step_enabled`` so that going back to
    ``line+internet`` restores it instead of silently leaving 2-step off.
    """
    return contract.two_step_enabled and contract.access_route != "line-only"


def change_access_route(contract: Contract, route: str, *, actor: User) -> bool:
    """Store the route; False when it was already so (nothing recorded)."""
    if route not in ACCESS_ROUTES:
        raise ValueError(route)
    # The same row lock as removing a line in the console: a switch to line-only and the
    # removal of the last line cannot interleave unseen.
    db.session.execute(select(Contract.id).where(Contract.id == contract.id).with_for_update())
    if contract.access_route == route:
        return False
    audit.record("contract.access_route_changed", actor=_actor(actor), target=_target(contract),
                 contract_id=contract.id, old=contract.access_route, new=route)
    contract.access_route = route
    return True


def set_two_step(contract: Contract, enabled: bool, *, actor: User) -> bool:
    if contract.two_step_enabled == enabled:
        return False
    contract.two_step_enabled = enabled
    action = "contract.two_step_enabled" if enabled else "contract.two_step_disabled"
    audit.record(action, actor=_actor(actor), target=_target(contract), contract_id=contract.id)
    return True


def set_two_step_keep_on_reset(contract: Contract, keep: bool, *, actor: User) -> bool:
    """The policy under which a password reset keeps the 2-step enrolment (only an admin
    resets it then; ``idp.mfa.enrolment``). False when it was already so."""
    if contract.two_step_keep_on_reset == keep:
        return False
    audit.record("contract.two_step_keep_on_reset_changed", actor=_actor(actor),
                 target=_target(contract), contract_id=contract.id,
                 old=contract.two_step_keep_on_reset, new=keep)
    contract.two_step_keep_on_reset = keep
    return True


def save_ad_settings(contract: Contract, values: dict[str, Any], *, actor: User) -> str:
    """Store the AD settings; the connection ID is made once and never changes after."""
    created = contract.connection_id is None
    if created:
        contract.connection_id = new_connection_id()
    contract.ad_settings = values
    audit.record("contract.ad_settings_changed", actor=_actor(actor), target=_target(contract),
                 contract_id=contract.id, type=values["type"],
                 connection_id=contract.connection_id, connection_id_created=created)
    return contract.connection_id


# -- contract details ------------------------------------------------------------------


@dataclass(frozen=True)
class Details:
    """契約情報: what the owner edits on "contract details"."""

    name: str
    contact_name: str
    contact_email: str
    contact_phone: str


_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]*$")


def _text(value: str | None) -> str:
    return unicodedata.normalize("NFKC", value or "").strip()


def details_of(contract: Contract) -> Details:
    return Details(contract.name, contract.contact_name, contract.contact_email,
                   contract.contact_phone)


def validate_details(form: dict[str, str]) -> tuple[Details, dict[str, str]]:
    """The details as typed (normalised) and field -> message key for each problem."""
    details = Details(
        name=_text(form.get("name")),
        contact_name=_text(form.get("contact_name")),
        contact_email=normalise_email(form.get("contact_email") or ""),
        contact_phone=_text(form.get("contact_phone")),
    )
    errors: dict[str, str] = {}
    for field in ("name", "contact_name"):
        value = getattr(details, field)
        if not value:
            errors[field] = "settings_field_required"
        elif len(value) > 200 or any(unicodedata.category(c) == "Cc" for c in value):
            errors[field] = "settings_field_too_long"
    if not details.contact_email:
        errors["contact_email"] = "settings_field_required"
    elif not valid_email(details.contact_email):
        errors["contact_email"] = "email_invalid"
    digits = sum(c.isdigit() for c in details.contact_phone)
    if not details.contact_phone:
        errors["contact_phone"] = "settings_field_required"
    elif not _PHONE.match(details.contact_phone) or not 10 <= digits <= 15 \
            or len(details.contact_phone) > 32:
        errors["contact_phone"] = "settings_phone_invalid"
    return details, errors


def change_details(contract: Contract, details: Details, *, actor: User) -> list[str]:
    """Store validated details; the names of the fields that changed (none: nothing done)."""
    before = asdict(details_of(contract))
    after = asdict(details)
    changed = [k for k in after if before[k] != after[k]]
    if not changed:
        return []
    for field in changed:
        setattr(contract, field, after[field])
    audit.record("contract.details_changed", actor=_actor(actor), target=_target(contract),
                 contract_id=contract.id, fields=changed,
                 old={k: before[k] for k in changed}, new={k: after[k] for k in changed})
    return changed


# -- plan change and cancellation ------------------------------------------------------


def plan_change_possible(contract: Contract) -> bool:
    """A trial, running or ended less than 15 days ago, can become basic (SPEC §2)."""
    return contract.plan == "trial" and contracts.state(contract) in ("active", "trial_ended")


def change_plan_to_basic(contract: Contract, *, actor: User) -> bool:
    """Trial -> basic; False when the contract is no longer a trial within its window."""
    if not plan_change_possible(contract):
        return False
    result = db.session.execute(
        update(Contract)
        .where(Contract.id == contract.id, Contract.plan == "trial",
               Contract.status == "active")
        .values(plan="basic", trial_ends_at=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    audit.record("contract.plan_changed", actor=_actor(actor), target=_target(contract),
                 contract_id=contract.id, old="trial", new="basic",
                 trial_ended_at=contract.trial_ends_at)
    # The row is updated; tell the loaded object without a second UPDATE.
    set_committed_value(contract, "plan", "basic")
    set_committed_value(contract, "trial_ends_at", None)
    return True


def cancel(contract: Contract, *, actor: User) -> list[str] | None:
    """Cancel a basic contract and cut every user of it off.

    Returns the access-token digests the caller deletes from the store *after* its
    commit, or None when the contract was not an active basic contract (someone else
    cancelled it first: nothing is done twice).
    """
    t = now()
    result = db.session.execute(
        update(Contract)
        .where(Contract.id == contract.id, Contract.plan == "basic",
               Contract.status == "active")
        .values(status="cancelled", cancelled_at=t)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    user_ids = contracts.contract_user_ids(contract)
    digests = contracts.revoke_user_access(user_ids)
    # Links already mailed (invitations, resets, ...) must not revive a cancelled contract.
    db.session.execute(
        update(Ticket)
        .where(Ticket.contract_id == contract.id, Ticket.used_at.is_(None),
               Ticket.voided_at.is_(None))
        .values(voided_at=t)
    )
    audit.record("contract.cancelled", actor=_actor(actor), target=_target(contract),
                 contract_id=contract.id, users=len(user_ids))
    set_committed_value(contract, "status", "cancelled")
    set_committed_value(contract, "cancelled_at", t)
    return digests
