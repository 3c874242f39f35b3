"""Recovery code: the "lost my device" way past the step-up chain (SPEC §4.4-4.5).

A user has at most one live code. It has 100 bits of entropy, so only its SHA-256 is
stored (a slow hash would add nothing) and it is looked up by that digest. Using it is one
conditional UPDATE (exactly one of two concurrent uses wins) and issues the next code,
which the caller shows once.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, update

from ..clock import now
from ..db import db
from ..models import RecoveryCode, User
from ..security import sha256_hex
from ..settings import Settings
from .base import Done, Outcome, Show, StepContext, Wrong

#: Crockford's base32: no I, L, O or U, so a code copied by hand has no look-alikes; the
#: letters people write for 1 and 0 are read as those digits (``normalise``).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: 20 symbols of 5 bits: 100 bits, beyond guessing even without an attempt limit.
LENGTH = 20
GROUP = 4
#: Anything longer is not a code; refused before normalising.
_MAX_INPUT = 200
_LOOK_ALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})
#: Separators people type or paste: spaces (NFKC folds the ideographic one into " ") and
#: hyphens, including what a Japanese IME gives for the "-" key (ー, ｰ folds into it) and
#: the dashes word processors substitute.
_DASHES = dict.fromkeys(map(ord, "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc"))


def normalise(code: str) -> str:
    """The canonical form of a code as typed or copied: NFKC (full-width is the same
    code), upper case, without spaces or hyphens, look-alike letters read as digits."""
    text = unicodedata.normalize("NFKC", code).upper()
    return "".join(text.split()).translate(_DASHES).translate(_LOOK_ALIKES)


def _format(symbols: str) -> str:
    return "-".join(symbols[i:i + GROUP] for i in range(0, len(symbols), GROUP))


def issue(user: User) -> str:
    """A new code for ``user``, replacing any live one (the caller commits and shows it)."""
    # On PostgreSQL two concurrent issues would each void what they can see and both insert,
    # leaving two live codes; the user row lock serialises them. (SQLite serialises writers
    # anyway and has no FOR UPDATE; SQLAlchemy leaves it out there.)
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    void_all(user)
    code = _format("".join(secrets.choice(ALPHABET) for _ in range(LENGTH)))
    db.session.add(RecoveryCode(user_id=user.id, code_hash=sha256_hex(normalise(code)),
                                created_at=now()))
    return code


def void_all(user: User) -> None:
    """Void the user's live code (enrolment reset, or a newer code replacing it)."""
    db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
               RecoveryCode.voided_at.is_(None))
        .values(voided_at=now())
        .execution_options(synchronize_session=False)
    )


def use(user: User, code: str | None) -> str | None:
    """Spend ``code`` if it is the user's live one and return the next code; else None.

    The row is found by the digest of the normalised input, never by comparing codes, so
    timing tells nothing about how close a guess was. The UPDATE's conditions are the
    check: of two concurrent uses only one sees a row count of 1.
    """
    if not code or len(code) > _MAX_INPUT:
        return None
    result = db.session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id,
               RecoveryCode.code_hash == sha256_hex(normalise(code)),
               RecoveryCode.used_at.is_(None), RecoveryCode.voided_at.is_(None))
        .values(used_at=now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return issue(user)


# -- the step ------------------------------------------------------------------------

#: A recovery code is a one-time password (RFC 8176 ``otp``), typed instead of the
#: enrolled factor's code.
AMR = "otp"


@dataclass(frozen=True)
class Config:
    """Nothing to configure: the code's length and alphabet are fixed above."""


def open(config: Config, settings: Settings) -> RecoveryStep:
    return RecoveryStep()


class RecoveryStep:
    """"Lost my device": the recovery code instead of the enrolled factor (SPEC §4.5)."""

    name = "recovery"
    enrols = False
    label = "mfa_use_recovery"

    def usable(self, ctx: StepContext) -> bool:
        if ctx.enrolling:
            return False
        return db.session.scalar(
            select(RecoveryCode.id).where(RecoveryCode.user_id == ctx.user.id,
                                          RecoveryCode.used_at.is_(None),
                                          RecoveryCode.voided_at.is_(None)).limit(1)
        ) is not None

    def begin(self, ctx: StepContext) -> Outcome:
        return Show("mfa/recovery.html")

    def verify(self, ctx: StepContext, form: Mapping[str, str]) -> Outcome:
        new_code = use(ctx.user, form.get("code"))
        if new_code is None:
            return Wrong(Show("mfa/recovery.html", error="mfa_recovery_wrong", status=400))
        return Done((AMR,), recovery_code=new_code)

    def after_enrolment(self, ctx: StepContext) -> str:
        """The first recovery code, issued when a factor is enrolled (SPEC §4.4)."""
        return issue(ctx.user)
