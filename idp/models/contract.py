"""Contracts (契約): the tenant that owns users and settings."""

from __future__ import annotations

import secrets

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db

PLANS = ("basic", "trial")
TRIAL_DAYS = 30


def new_contract_id() -> str:
    return "ctr_" + secrets.token_hex(8)


class Contract(db.Model):
    __tablename__ = "contracts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_contract_id)
    brand: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200), default="")
    plan: Mapped[str] = mapped_column(String(20), default="basic")
    #: ``active`` or ``cancelled``.
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[int] = mapped_column(Integer)
    #: End of the trial (epoch seconds) for plan ``trial``.
    trial_ends_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
