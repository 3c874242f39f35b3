"""Upstream accounts linked to users (SPEC §5): the only way an upstream sign-in finds a user."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db


class LinkedIdentity(db.Model):
    """An upstream account (connector, issuer, subject) linked to one user.

    The unique key is the lookup: an upstream subject linked to one user can never sign
    in as another, and the e-mail address plays no part in finding anyone.
    """

    __tablename__ = "linked_identities"
    __table_args__ = (
        UniqueConstraint("connector", "issuer", "subject",
                         name="uq_linked_identities_connector_issuer_subject"),
        Index("ix_linked_identities_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: The connector's id: ``google``, ``facebook``, ... or the contract's ``adfs-...``.
    connector: Mapped[str] = mapped_column(String(60))
    issuer: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(255))
    #: What the upstream said when linked, for the console (not used to find anyone).
    email: Mapped[str] = mapped_column(String(320), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    linked_at: Mapped[int] = mapped_column(Integer)
    last_used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
