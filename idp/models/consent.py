"""Consent remembered per user, client and scope."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db


class Consent(db.Model):
    __tablename__ = "consents"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    #: Space-separated scopes granted so far (the union of every consent).
    scope: Mapped[str] = mapped_column(Text, default="")
    granted_at: Mapped[int] = mapped_column(Integer)

    def covers(self, scopes: set[str]) -> bool:
        return scopes <= set(self.scope.split())
