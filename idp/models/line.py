"""Fibre line IDs a contract registered for line authentication (回線認証, SPEC §7)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db


class ContractLine(db.Model):
    """One registered line: sign-ins asserted from it count as the contract's line route."""

    __tablename__ = "contract_lines"
    __table_args__ = (
        # A line may serve two contracts (tenants sharing an office), but once each.
        UniqueConstraint("contract_id", "line_id", name="uq_contract_lines_contract_line"),
        Index("ix_contract_lines_line_id", "line_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id", ondelete="CASCADE"))
    #: ``CAF`` + 10 or ``COP`` + 8 alphanumerics, upper case (``idp.lines.normalise``).
    line_id: Mapped[str] = mapped_column(String(13))
    created_at: Mapped[int] = mapped_column(Integer)
    #: Audit actor who registered it (``user:<id>``).
    created_by: Mapped[str] = mapped_column(String(60), default="")
    #: When someone signing in over this West Japan line agreed to "notify line
    #: information" (回線情報通知): the page is shown until then.
    notify_consent_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
