"""Second factors: enrolled factors, recovery codes, used TOTP steps, remembered browsers.

Everything a replay or a Redis flush must not reopen lives here, in the database: a used
TOTP step is a row with a unique key, a recovery code is used by a conditional UPDATE.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db

#: Factor types a user can enrol (the recovery code is not a factor: it stands in for one).
FACTOR_TYPES = ("sms", "totp")


class Factor(db.Model):
    """One enrolled factor of a user: a phone for SMS, or an authenticator app's secret."""

    __tablename__ = "mfa_factors"
    __table_args__ = (Index("ix_mfa_factors_user", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(20))
    #: TOTP secret, AES-GCM sealed (``idp.security.seal``); never in the clear at rest.
    secret_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: E.164 phone number for SMS.
    phone: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[int] = mapped_column(Integer)
    #: Set when the user proved the factor works (a first code); unconfirmed ones never count.
    confirmed_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)


class UsedTotpStep(db.Model):
    """A TOTP time step already accepted for a factor: the same code never works twice.

    The primary key is the guard: of two concurrent submissions of one code, exactly one
    INSERT succeeds, on SQLite and PostgreSQL alike.
    """

    __tablename__ = "mfa_totp_steps"

    factor_id: Mapped[int] = mapped_column(ForeignKey("mfa_factors.id", ondelete="CASCADE"),
                                           primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    used_at: Mapped[int] = mapped_column(Integer)


class RecoveryCode(db.Model):
    """The user's recovery code: only its SHA-256 (it has 100 bits of entropy)."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = (UniqueConstraint("code_hash", name="uq_mfa_recovery_codes_code_hash"),
                      Index("ix_mfa_recovery_codes_user", "user_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(Integer)
    used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Set when a newer code replaced it or the enrolment was reset.
    voided_at: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RememberedBrowser(db.Model):
    """A browser the user asked to remember: 2-step verification is skipped there."""

    __tablename__ = "mfa_remembered_browsers"
    __table_args__ = (Index("ix_mfa_remembered_browsers_user", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: SHA-256 of the random token in the browser's signed cookie.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: What the settings menu shows to tell browsers apart (User-Agent, trimmed).
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[int] = mapped_column(Integer)
    last_seen_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer)
    revoked_at: Mapped[int | None] = mapped_column(Integer, nullable=True)


class SmsOutboxMessage(db.Model):
    """An SMS "sent" without a gateway (development and tests): /dev/outbox lists them."""

    __tablename__ = "sms_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    to: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(String(500))
    sender: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[int] = mapped_column(Integer)
