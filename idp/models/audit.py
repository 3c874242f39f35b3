"""Audit log: who did what, when, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    #: The console's log page reads one contract's events newest first: this index serves
    #: that order (and any date range) directly, and its prefix any lookup by contract.
    __table_args__ = (Index("ix_audit_events_contract_at", "contract_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(Integer, index=True)
    #: ``user:<id>``, ``client:<id>``, ``operator`` (CLI) ...
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(200), default="")
    contract_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
