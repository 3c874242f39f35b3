"""Outgoing mail: a durable queue written in the same transaction as the action."""

from __future__ import annotations

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db

#: ``pending`` (to send or retry), ``sent``, ``failed`` (gave up after every retry).
STATUSES = ("pending", "sent", "failed")


class MailMessage(db.Model):
    __tablename__ = "mail_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    brand: Mapped[str] = mapped_column(String(40))
    lang: Mapped[str] = mapped_column(String(8))
    to: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    #: The body, AES-GCM encrypted: it may hold a ticket link, which must not sit in
    #: the database in the clear. Dropped once sent (kept only by the development outbox).
    body_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
