"""Line IDs (回線番号) of a contract: validation, registration, lookup (SPEC §7).

A line ID is ``CAF`` + 10 alphanumerics (13 characters) or ``COP`` + 8 alphanumerics
(11 characters), as NTT East and West print them on the fibre contract; stored upper
case. Registering and removing are audited in the caller's transaction.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select

from . import audit
from .clock import now
from .db import db
from .models import Contract, ContractLine, User

_FORMAT = re.compile(r"(?:CAF[0-9A-Z]{10}|COP[0-9A-Z]{8})")
#: Longer input is not a line ID; refused before normalising.
_MAX_INPUT = 40


class LineIdError(ValueError):
    """``args[0]`` is a message key (idp/messages/lines.toml)."""


def normalise(raw: str | None) -> str:
    """The line ID as stored: NFKC (full-width input), no spaces or hyphens, upper case.

    Raises ``LineIdError("line_id_required" | "line_id_invalid")``.
    """
    text = unicodedata.normalize("NFKC", raw or "").strip()
    if not text:
        raise LineIdError("line_id_required")
    if len(text) > _MAX_INPUT:
        raise LineIdError("line_id_invalid")
    value = "".join(text.split()).replace("-", "").upper()
    if not _FORMAT.fullmatch(value):
        raise LineIdError("line_id_invalid")
    return value


def valid(value: str | None) -> bool:
    """Is ``value`` a well-formed line ID as a gateway sends it (already upper case)?"""
    return bool(value) and len(value) <= 13 and _FORMAT.fullmatch(value) is not None


def listing(contract: Contract) -> list[ContractLine]:
    return list(db.session.scalars(select(ContractLine)
                                   .where(ContractLine.contract_id == contract.id)
                                   .order_by(ContractLine.line_id)))


def find(contract_id: str, line_id: str | None) -> ContractLine | None:
    """The contract's registration of ``line_id``, if any."""
    if not valid(line_id):
        return None
    return db.session.scalar(select(ContractLine).where(ContractLine.contract_id == contract_id,
                                                        ContractLine.line_id == line_id))


def register(contract: Contract, raw: str, *, actor: User) -> ContractLine:
    """Register a line for the contract (the caller commits).

    Raises ``LineIdError`` for a malformed ID or one the contract already has.
    """
    line_id = normalise(raw)
    if find(contract.id, line_id) is not None:
        raise LineIdError("line_id_taken")
    row = ContractLine(contract_id=contract.id, line_id=line_id, created_at=now(),
                       created_by=audit.actor_of(actor))
    db.session.add(row)
    audit.record("contract.line_registered", actor=audit.actor_of(actor),
                 target=f"contract:{contract.id}", contract_id=contract.id, line_id=line_id)
    return row


def remove(contract: Contract, line_id: str, *, actor: User) -> bool:
    """Remove a registered line; False when the contract has no such line."""
    row = find(contract.id, line_id)
    if row is None:
        return False
    db.session.delete(row)
    audit.record("contract.line_removed", actor=audit.actor_of(actor),
                 target=f"contract:{contract.id}", contract_id=contract.id, line_id=line_id)
    return True
