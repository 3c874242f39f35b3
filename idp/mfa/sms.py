"""SMS factor: a 6-digit code sent to the user's mobile phone (SPEC §4.4; amr ``sms``).

Enrolment asks for the number (Japanese national or E.164 form, ``idp.mfa.phone``), sends
a code and enrols the number once the code comes back. Verification sends a code to the
enrolled number. A code is valid ``code_ttl`` seconds and for ``max_tries`` wrong tries,
then it is void and a new one must be sent; sends are limited per account and per number
(``resend_after`` seconds apart, ``sends_per_hour``) so that the sign-in page is no SMS
cannon. Codes live only in the store, as a SHA-256: a flushed store loses them (fail
closed), and a store dump shows no code.
"""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
from flask import current_app
from sqlalchemy import delete, select

from .. import audit
from ..clock import now
from ..db import db
from ..i18n import t
from ..models import Factor
from ..notify.sms import OutboxSmsSender, SmsError, SmsSender, open_sms_sender
from ..ratelimit import Limit
from ..security import sha256_hex
from ..settings import Settings, SettingsError
from . import phone
from .base import Done, Outcome, Show, StepContext, Wrong

TYPE = "sms"
AMR = "sms"
CODE_LENGTH = 6
_KEY = "mfa-sms:"
_WAIT = "mfa-sms-wait:"


@dataclass(frozen=True)
class Config:
    #: Seconds a code stays valid (SPEC §4: 5 minutes).
    code_ttl: int = 300
    #: Wrong tries a code survives; the next try voids it (a new code must be sent).
    max_tries: int = 5
    #: Seconds before another code can be sent to the same account or number.
    resend_after: int = 60
    #: Codes per hour to one number, and to one account.
    sends_per_hour: int = 5
    #: Regions (ISO 3166) whose numbers may receive codes. Premium-rate numbers abroad are
    #: how SMS toll fraud pays: a sign-in page that texts any number is a money pump.
    countries: tuple[str, ...] = ("JP",)

    def __post_init__(self) -> None:
        for name in ("code_ttl", "max_tries", "resend_after", "sends_per_hour"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if not self.countries or not all(isinstance(c, str) and len(c) == 2
                                         for c in self.countries):
            raise ValueError("countries must list ISO 3166 region codes such as \"JP\"")


def open(config: Config, settings: Settings) -> SmsStep:
    if settings.sms_url:
        sender: SmsSender = open_sms_sender(settings.sms_url, settings.sms_token,
                                            timeout=settings.sms_timeout)
    elif settings.environment == "production":
        raise SettingsError(["sms_url is required in production when the chain sends SMS "
                             "(IDP_SMS_URL); the SMS outbox is for development only"])
    else:
        sender = OutboxSmsSender()
    return SmsStep(config, sender)


def _store():
    return current_app.extensions["idp.store"]


def _digits(typed: str | None) -> str | None:
    """The code as typed: full-width digits and spaces are accepted."""
    if not typed or len(typed) > 32:
        return None
    cleaned = "".join(unicodedata.normalize("NFKC", typed).split())
    if len(cleaned) != CODE_LENGTH or not (cleaned.isascii() and cleaned.isdigit()):
        return None
    return cleaned


@dataclass(frozen=True)
class Refusal:
    """Why no code was sent: a message key, the HTTP status and when to try again."""

    error: str
    status: int
    retry_after: int | None = None
    extra: Mapping[str, str] | None = None

    def page(self) -> dict[str, Any]:
        return {"error": self.error, "status": self.status, "retry_after": self.retry_after,
                **(self.extra or {})}


class SmsStep:
    name = TYPE
    enrols = True
    label = "mfa_use_sms"

    def __init__(self, config: Config, sender: SmsSender):
        self.config = config
        self.sender = sender

    # -- the protocol --------------------------------------------------------------

    def usable(self, ctx: StepContext) -> bool:
        return ctx.enrolling or self._factor(ctx) is not None

    def begin(self, ctx: StepContext) -> Outcome:
        if ctx.enrolling:
            if ctx.state.get("stage") == "code":
                return self._code_page(ctx)
            return self._phone_page(ctx)
        factor = self._factor(ctx)
        assert factor is not None and factor.phone
        ctx.state["phone"] = factor.phone
        if self._live_code(ctx) is not None:
            return self._code_page(ctx)  # already sent (a reload, or a new sign-in)
        return self._resend(ctx)

    def verify(self, ctx: StepContext, form: Mapping[str, str]) -> Outcome:
        action = form.get("action", "code")
        if action == "phone" and ctx.enrolling:
            return self._take_number(ctx, form.get("phone", ""))
        if action == "change" and ctx.enrolling:
            ctx.state.clear()
            return self._phone_page(ctx)
        if not ctx.state.get("phone"):
            return self.begin(ctx)
        if action == "resend":
            return self._resend(ctx)
        return self._check(ctx, form.get("code"))

    # -- steps of the pages ----------------------------------------------------------

    def _take_number(self, ctx: StepContext, typed: str) -> Outcome:
        try:
            number = phone.normalise(typed)
        except ValueError as exc:
            return self._phone_page(ctx, error=str(exc.args[0]), status=400, typed=typed)
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
        if region not in self.config.countries:
            return self._phone_page(ctx, error="sms_country_not_allowed", status=400,
                                    typed=typed)
        refused = self._send(ctx, number)
        if refused is not None:
            return self._phone_page(ctx, typed=typed, **refused.page())
        ctx.state.update(phone=number, stage="code")
        return self._code_page(ctx, sent=True)

    def _send(self, ctx: StepContext, number: str) -> Refusal | None:
        """Send a new code to ``number``; None when the gateway took it."""
        c = self.config
        t0 = now()
        store = _store()
        for subject in (ctx.user.id, number):
            waited = store.get(_WAIT + sha256_hex(subject))
            if waited and t0 - int(waited.get("at", 0)) < c.resend_after:
                wait = c.resend_after - (t0 - int(waited["at"]))
                return Refusal("sms_wait", 429, wait, {"wait": str(wait)})
        for name, subject in (("sms-number", number), ("sms-account", ctx.user.id)):
            limit = Limit(name, c.sends_per_hour, 3600)
            if limit.hit(subject) > c.sends_per_hour:
                return Refusal("sms_limit", 429, limit.retry_after())
        for subject in (ctx.user.id, number):
            store.put(_WAIT + sha256_hex(subject), {"at": t0}, c.resend_after + 60)
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_LENGTH))
        key = self._key(ctx)
        store.put(key, {"digest": self._digest(ctx, code), "phone": number,
                        "expires_at": t0 + c.code_ttl}, c.code_ttl + 60)
        store.delete(key + ":tries")
        text = t("sms_text", ctx.lang, brand=ctx.brand.name(ctx.lang), code=code,
                 minutes=str(max(1, c.code_ttl // 60)))
        try:
            self.sender.send(number, text, sender=ctx.brand.id)
        except SmsError as exc:
            # The user is told and can send again or switch factor; the code may still
            # arrive (a timeout), so it stays valid, but the resend wait does not apply.
            for subject in (ctx.user.id, number):
                store.delete(_WAIT + sha256_hex(subject))
            audit.record("mfa.sms_failed", actor=audit.actor_of(ctx.user),
                         target=f"user:{ctx.user.id}", contract_id=ctx.user.contract_id,
                         phone=phone.mask(number), reason=str(exc), permanent=exc.permanent)
            return Refusal("sms_send_failed", 502)
        audit.record("mfa.sms_sent", actor=audit.actor_of(ctx.user),
                     target=f"user:{ctx.user.id}", contract_id=ctx.user.contract_id,
                     phone=phone.mask(number))
        ctx.state["sent_at"] = t0
        return None

    def _resend(self, ctx: StepContext) -> Show:
        refused = self._send(ctx, ctx.state["phone"])
        if refused is not None:
            return self._code_page(ctx, **refused.page())
        return self._code_page(ctx, sent=True)

    def _check(self, ctx: StepContext, typed: str | None) -> Outcome:
        store = _store()
        key = self._key(ctx)
        record = self._live_code(ctx)
        if record is None:
            return self._code_page(ctx, error="sms_code_expired", status=400)
        tries = store.incr(key + ":tries", self.config.code_ttl + 60)
        if tries > self.config.max_tries:
            store.delete(key)
            return self._code_page(ctx, error="sms_too_many_tries", status=400)
        code = _digits(typed)
        if code is None or not hmac.compare_digest(self._digest(ctx, code), record["digest"]):
            return Wrong(self._code_page(ctx, error="mfa_code_wrong", status=400))
        # Single use: of two submissions of the right code only one takes it.
        if store.take(key) is None:
            return self._code_page(ctx, error="sms_code_expired", status=400)
        t0 = now()
        if ctx.enrolling:
            db.session.execute(delete(Factor).where(Factor.user_id == ctx.user.id))
            db.session.add(Factor(user_id=ctx.user.id, type=TYPE, phone=record["phone"],
                                  created_at=t0, confirmed_at=t0, last_used_at=t0))
            return Done((AMR,), enrolled=True)
        factor = self._factor(ctx)
        if factor is None or factor.phone != record["phone"]:
            return self._code_page(ctx, error="sms_code_expired", status=400)
        factor.last_used_at = t0
        return Done((AMR,))

    # -- helpers ---------------------------------------------------------------------

    def _factor(self, ctx: StepContext) -> Factor | None:
        reset = ctx.user.two_step_reset_at or 0
        return db.session.scalar(
            select(Factor).where(Factor.user_id == ctx.user.id, Factor.type == TYPE,
                                 Factor.confirmed_at.is_not(None),
                                 Factor.confirmed_at >= reset)
            .order_by(Factor.id.desc()).limit(1))

    @staticmethod
    def _key(ctx: StepContext) -> str:
        # One live code per user: a new sign-in within its lifetime uses the code already
        # on the phone instead of sending another.
        return _KEY + sha256_hex(ctx.user.id)

    @staticmethod
    def _digest(ctx: StepContext, code: str) -> str:
        # Salted with the user id: the store's digests are no lookup table of codes.
        return sha256_hex(f"{ctx.user.id}:{code}")

    def _live_code(self, ctx: StepContext) -> dict[str, Any] | None:
        record = _store().get(self._key(ctx))
        if record is None or record.get("expires_at", 0) <= now() \
                or record.get("phone") != ctx.state.get("phone"):
            return None
        return record

    def _phone_page(self, ctx: StepContext, *, error: str | None = None, status: int = 200,
                    typed: str = "", retry_after: int | None = None, **extra: str) -> Show:
        return Show("mfa/sms_phone.html", {"typed": typed or ctx.state.get("typed", ""),
                                           **extra},
                    error=error, status=status, retry_after=retry_after)

    def _code_page(self, ctx: StepContext, *, error: str | None = None, status: int = 200,
                   sent: bool = False, retry_after: int | None = None, **extra: str) -> Show:
        number = ctx.state.get("phone")
        return Show("mfa/sms_code.html",
                    {"masked": phone.mask(number) if number else "", "sent": sent,
                     "remember_offered": True, **extra},
                    error=error, status=status, retry_after=retry_after)
