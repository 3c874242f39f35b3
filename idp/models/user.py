"""Users: one login method each, an email as login ID, unique per brand."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db

ROLES = ("owner", "admin", "user")
#: ``invited`` until the invitation is completed; ``disabled`` by an admin.
STATUSES = ("invited", "active", "disabled")
LANGUAGES = ("ja", "en")


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("brand", "email", name="uq_users_brand_email"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    #: Denormalised from the contract so the login ID is unique per brand in one index.
    brand: Mapped[str] = mapped_column(String(40))
    email: Mapped[str] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(default=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default="user")
    login_method: Mapped[str] = mapped_column(String(40), default="password")
    #: argon2id hash, or None for users without a password.
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    phone_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    #: Language of the mails sent to this user (``ja`` or ``en``).
    locale: Mapped[str] = mapped_column(String(8), default="ja")
    #: Consecutive wrong passwords from browsers this account never signed in from.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Bumped to void every session and access token of the user at once (password reset,
    #: email change, cancellation, ...): they carry the epoch they were issued under.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    #: Set when the 2-step enrolment was reset; the step-up chain enrols again after it.
    two_step_reset_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    password_changed_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[int] = mapped_column(Integer)
    last_login_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
