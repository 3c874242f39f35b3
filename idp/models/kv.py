"""Rows of the SQL-backed ephemeral store (see idp/store/sql.py)."""

from __future__ import annotations

from sqlalchemy import Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db


class KeyValue(db.Model):
    __tablename__ = "ephemeral"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
