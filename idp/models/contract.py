"""Contracts (契約): the tenant that owns users and settings."""

from __future__ import annotations

import secrets
import string
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db

PLANS = ("basic", "trial")
TRIAL_DAYS = 30
#: A trial may still be changed to ``basic`` this long after it ended (SPEC §2).
PLAN_CHANGE_GRACE_DAYS = 15
ACCESS_ROUTES = ("line+internet", "line-only")
_ALNUM = string.ascii_lowercase + string.digits


def new_contract_id() -> str:
    return "ctr_" + secrets.token_hex(8)


def new_connection_id() -> str:
    """``adfs-`` + 18 alphanumerics (SPEC §5): the AD login URL carries it."""
    return "adfs-" + "".join(secrets.choice(_ALNUM) for _ in range(18))


class Contract(db.Model):
    __tablename__ = "contracts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=new_contract_id)
    brand: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200), default="")
    plan: Mapped[str] = mapped_column(String(20), default="basic")
    #: ``active`` or ``cancelled``. A trial past its end is *ended* by the clock alone
    #: (``idp.contracts.state``), so nothing has to run at midnight for it to stop.
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[int] = mapped_column(Integer)
    #: End of the trial (epoch seconds) for plan ``trial``.
    trial_ends_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cancelled_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Contact person for the contract (契約情報): shown and edited on "contract details".
    contact_name: Mapped[str] = mapped_column(String(200), default="")
    contact_email: Mapped[str] = mapped_column(String(320), default="")
    contact_phone: Mapped[str] = mapped_column(String(32), default="")
    #: Contract-wide 2-step verification for password users (SPEC §8), on by default.
    two_step_enabled: Mapped[bool] = mapped_column(default=True)
    #: Policy, off by default: a password reset keeps the 2-step enrolment, so that only an
    #: admin can reset it (a reset link alone then does not weaken 2-step verification).
    two_step_keep_on_reset: Mapped[bool] = mapped_column(default=False,
                                                         server_default=sa_false())
    #: ``line+internet`` (default) or ``line-only`` (SPEC §7).
    access_route: Mapped[str] = mapped_column(String(20), default="line+internet")
    #: The contract's AD connection ID, set when the owner sets up AD.
    connection_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    #: AD settings as entered by the owner (``{"type": "adfs"|"ldap", ...}``).
    ad_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
