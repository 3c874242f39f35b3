"""Authenticator-app factor: TOTP (RFC 6238; key URI format of Google Authenticator).

A factor is enrolled unconfirmed with a fresh secret, shown once as a QR code, and
confirmed by its first accepted code. Verifying is single use per time step: the accepted
step is a row in ``mfa_totp_steps`` whose primary key makes a replay fail, on SQLite and
PostgreSQL alike. Attempt limits are the caller's (the chain's lockout), not this module's.
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pyotp
import segno
from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..db import db, savepoint
from ..models import Factor, UsedTotpStep, User
from ..security import seal, unseal
from ..settings import Settings
from .base import Done, Outcome, Show, StepContext, Wrong
from .enrolment import confirmed_factor

TYPE = "totp"
#: RFC 6238 defaults, the only ones every authenticator app honours (Google's ignores others).
DIGITS = 6
PERIOD = 30
#: Steps accepted either side of the current one: a phone clock 30 s off, or a code typed as
#: it rolled over. Each extra step adds one more guess per attempt (3 in a million here).
WINDOW = 1
#: 160 bits, RFC 4226 §4's recommended key length (32 base32 characters).
SECRET_CHARS = 32


def new_secret() -> str:
    """A fresh shared secret, base32 without padding as authenticator apps expect."""
    return pyotp.random_base32(SECRET_CHARS)


def _purpose(user_id: str) -> str:
    # The user id is part of the AES-GCM associated data: a secret_enc copied onto another
    # user's factor row (someone with write access to one table) does not unseal there, so
    # it cannot be used to pass as that user with an app the copier controls.
    return f"mfa.totp:{user_id}"


def _key() -> str:
    return current_app.extensions["idp.settings"].secret_key


def enrol(user: User) -> Factor:
    """Add an unconfirmed TOTP factor with a new sealed secret (the caller commits).

    An earlier unconfirmed TOTP enrolment of the user is dropped: its QR code was shown
    and abandoned, and a secret nobody confirmed should not linger at rest.
    """
    db.session.execute(delete(Factor).where(Factor.user_id == user.id, Factor.type == TYPE,
                                            Factor.confirmed_at.is_(None)))
    factor = Factor(user_id=user.id, type=TYPE, created_at=now(),
                    secret_enc=seal(new_secret().encode("ascii"), secret=_key(),
                                    purpose=_purpose(user.id)))
    db.session.add(factor)
    return factor


def secret_of(factor: Factor) -> str:
    """The factor's secret, unsealed; only for the QR code and the verification below."""
    _check(factor)
    return unseal(factor.secret_enc, secret=_key(), purpose=_purpose(factor.user_id)).decode()


def provisioning_uri(factor: Factor, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` key URI the QR code carries.

    Algorithm, digits and period are spelled out although they are the defaults, so an app
    never has to guess; the issuer is both the label prefix and a parameter, as Google's
    key URI format recommends (older apps read one, newer ones the other).
    """
    label = quote(issuer, safe="") + ":" + quote(account, safe="")
    params = {"secret": secret_of(factor), "issuer": issuer, "algorithm": "SHA1",
              "digits": DIGITS, "period": PERIOD}
    return f"otpauth://totp/{label}?{urlencode(params, quote_via=quote)}"


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as a ``data:image/svg+xml`` URI for an ``<img src>``.

    Rendered here with segno: the secret never goes to a third-party QR service. A data: URI
    fits the CSP (``img-src 'self' data:``, no inline styles or scripts) and an SVG loaded
    as an image can run nothing; the template escapes it like any attribute value.
    """
    # Error level M and a 4-module quiet zone: what phone cameras read first time off a
    # screen. Explicit white background, so a dark theme does not invert the contrast.
    qr = segno.make(uri, error="m", micro=False)
    # 4 px a module: whole pixels (sharp edges for the camera), and the usual URI's
    # version-13 code (77 modules with the border) still fits the page's column.
    return qr.svg_data_uri(scale=4, border=4, dark="#000", light="#fff")


def _check(factor: Factor) -> None:
    if factor.type != TYPE or factor.secret_enc is None:
        raise ValueError(f"factor {factor.id} is not a TOTP factor")


def _digits(code: str | None) -> str | None:
    """The six ASCII digits typed, or None: full-width digits from a Japanese IME and
    spaces (``123 456`` as some apps display it) are accepted."""
    if not code or len(code) > 32:
        return None
    cleaned = "".join(unicodedata.normalize("NFKC", code).split())
    if len(cleaned) != DIGITS or not (cleaned.isascii() and cleaned.isdigit()):
        return None
    return cleaned


def verify(factor: Factor, code: str | None, *, at: int | None = None) -> bool:
    """True when ``code`` is valid for ``factor`` now (or at ``at``) and was never used.

    Accepting records the step, sets ``last_used_at`` and, the first time,
    ``confirmed_at``, all in the caller's transaction: the caller commits (a rollback
    forgets the step, so the code can be tried again).
    """
    _check(factor)
    cleaned = _digits(code)
    if cleaned is None:
        return False
    t = now() if at is None else at
    totp = pyotp.TOTP(secret_of(factor), digits=DIGITS, interval=PERIOD)
    current = t // PERIOD
    # Every step of the window is computed and compared, matching or not, and with
    # compare_digest: the response time says nothing about which digits were right.
    matches = [step for step in range(current - WINDOW, current + WINDOW + 1)
               if hmac.compare_digest(totp.generate_otp(step), cleaned)]
    if not matches:
        return False
    newest = db.session.scalar(select(func.max(UsedTotpStep.step))
                               .where(UsedTotpStep.factor_id == factor.id))
    # A code from a step at or before the newest accepted one is refused, not only the very
    # same step: a code seen over the user's shoulder (or phished) a minute ago is still in
    # the window after the user has signed in with a newer one.
    fresh = [step for step in matches if newest is None or step > newest]
    if not fresh:
        return False
    step = fresh[0]
    # The check above is a read, and two submissions of one code can both pass it. The
    # INSERT is the guard: the primary key (factor_id, step) lets exactly one of them in.
    # The loser's failed INSERT is rolled back to the SAVEPOINT, so the caller's
    # transaction (and whatever else it holds) survives on PostgreSQL too.
    try:
        with savepoint():
            db.session.add(UsedTotpStep(factor_id=factor.id, step=step, used_at=t))
            db.session.flush()
    except IntegrityError:
        return False
    factor.last_used_at = t
    if factor.confirmed_at is None:
        factor.confirmed_at = t
    return True


# -- the step ------------------------------------------------------------------------

AMR = "otp"
#: Spaces every 4 characters, for typing the secret into an app by hand.
_GROUP = 4


@dataclass(frozen=True)
class Config:
    """The authenticator app has nothing to configure: RFC 6238's defaults are the only
    values every app honours. The issuer shown in the app is the brand's name."""


def open(config: Config, settings: Settings) -> TotpStep:
    return TotpStep()


class TotpStep:
    name = TYPE
    enrols = True
    label = "mfa_use_totp"

    def usable(self, ctx: StepContext) -> bool:
        return ctx.enrolling or self._confirmed(ctx) is not None

    def begin(self, ctx: StepContext) -> Outcome:
        if not ctx.enrolling:
            return Show("mfa/totp_code.html", {"remember_offered": True})
        factor = self._pending(ctx)
        if factor is None:
            factor = enrol(ctx.user)
            db.session.flush()
            ctx.state["factor_id"] = factor.id
        return self._enrol_page(ctx, factor)

    def verify(self, ctx: StepContext, form: Mapping[str, str]) -> Outcome:
        code = form.get("code")
        if ctx.enrolling:
            factor = self._pending(ctx)
            if factor is None:
                return self.begin(ctx)
            if not verify(factor, code):
                return Wrong(self._enrol_page(ctx, factor, error="mfa_code_wrong"))
            # One factor at a time: the new app replaces whatever was enrolled before.
            db.session.execute(delete(Factor).where(Factor.user_id == ctx.user.id,
                                                    Factor.id != factor.id))
            ctx.state.pop("factor_id", None)
            return Done((AMR,), enrolled=True)
        factor = self._confirmed(ctx)
        if factor is None or not verify(factor, code):
            return Wrong(Show("mfa/totp_code.html", {"remember_offered": True},
                              error="mfa_code_wrong", status=400))
        return Done((AMR,))

    def _confirmed(self, ctx: StepContext) -> Factor | None:
        return confirmed_factor(ctx.user, TYPE)

    def _pending(self, ctx: StepContext) -> Factor | None:
        factor_id = ctx.state.get("factor_id")
        factor = db.session.get(Factor, factor_id) if isinstance(factor_id, int) else None
        # SQLite reuses deleted ids: the row must still be this user's unconfirmed TOTP.
        if factor is None or factor.user_id != ctx.user.id or factor.type != TYPE \
                or factor.confirmed_at is not None:
            return None
        return factor

    def _enrol_page(self, ctx: StepContext, factor: Factor, *,
                    error: str | None = None) -> Show:
        uri = provisioning_uri(factor, account=ctx.user.email, issuer=ctx.brand.name(ctx.lang))
        secret = secret_of(factor)
        grouped = " ".join(secret[i:i + _GROUP] for i in range(0, len(secret), _GROUP))
        return Show("mfa/totp_enrol.html",
                    {"qr": qr_svg(uri), "secret": grouped, "remember_offered": True},
                    error=error, status=400 if error else 200)
