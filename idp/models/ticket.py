"""Tickets: the one-time links mailed to users (invitation, reset, unlock, ...)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db

#: Every kind of mailed link (SPEC §6). The AD login URL notice carries no ticket.
KINDS = ("invitation", "password_reset", "unlock", "email_change", "login_method_change")


class Ticket(db.Model):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_user_kind", "user_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: SHA-256 of the token in the mail; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    contract_id: Mapped[str] = mapped_column(String(40), index=True)
    #: The address the link was mailed to (the NEW address for an email change).
    email: Mapped[str] = mapped_column(String(320))
    #: Kind-specific data, e.g. ``{"new_email": ...}``; never a secret.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``user:<id>`` of whoever caused it to be sent, or ``self``.
    issued_by: Mapped[str] = mapped_column(String(80), default="self")
    created_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer)
    used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Set when a newer ticket of the same kind, or an email change, superseded it.
    voided_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
