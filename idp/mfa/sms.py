"""SMS factor: a 6-digit code sent to the user's mobile phone (SPEC §4.4; amr ``sms``).

Enrolment asks for the number (Japanese national or E.164 form, ``idp.mfa.phone``), sends
a code and enrols the number once the code comes back. Verification sends a code to the
enrolled number. Codes, their lifetime, tries and send limits are ``idp.mfa.codes``'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import delete

from .. import audit
from ..clock import now
from ..db import db
from ..i18n import t
from ..models import Factor
from ..notify.sms import OutboxSmsSender, SmsError, SmsSender, open_sms_sender
from ..settings import Settings, SettingsError
from . import phone
from .base import Done, Outcome, Show, StepContext, Wrong
from .codes import Checked, CodeConfig, Refusal, SentCodes
from .enrolment import confirmed_factor

TYPE = "sms"
AMR = "sms"


@dataclass(frozen=True)
class Config(CodeConfig):
    #: Regions (ISO 3166) whose numbers may receive codes. Premium-rate numbers abroad are
    #: how SMS toll fraud pays: a sign-in page that texts any number is a money pump.
    countries: tuple[str, ...] = ("JP",)

    def __post_init__(self) -> None:
        super().__post_init__()
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


class SmsStep:
    name = TYPE
    enrols = True
    label = "mfa_use_sms"

    def __init__(self, config: Config, sender: SmsSender):
        self.config = config
        self.sender = sender
        self.codes = SentCodes(TYPE, config)

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
        if self.codes.live(ctx.user.id, factor.phone) is not None:
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

    # -- the pages' actions ----------------------------------------------------------

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
        code = self.codes.issue(ctx.user.id, number)
        if isinstance(code, Refusal):
            return code
        text = t("sms_text", ctx.lang, brand=ctx.brand.name(ctx.lang), code=code,
                 minutes=self.config.minutes)
        details = {"actor": audit.actor_of(ctx.user), "target": f"user:{ctx.user.id}",
                   "contract_id": ctx.user.contract_id, "phone": phone.mask(number)}
        try:
            self.sender.send(number, text, sender=ctx.brand.id)
        except SmsError as exc:
            # The user is told and can send again or switch factor.
            self.codes.not_sent(ctx.user.id, number)
            audit.record("mfa.sms_failed", reason=str(exc), permanent=exc.permanent, **details)
            return Refusal("sms_send_failed", 502)
        audit.record("mfa.sms_sent", **details)
        return None

    def _resend(self, ctx: StepContext) -> Show:
        refused = self._send(ctx, ctx.state["phone"])
        if refused is not None:
            return self._code_page(ctx, **refused.page())
        return self._code_page(ctx, sent=True)

    def _check(self, ctx: StepContext, typed: str | None) -> Outcome:
        number = ctx.state["phone"]
        checked = self.codes.check(ctx.user.id, number, typed)
        if checked is Checked.WRONG:
            return Wrong(self._code_page(ctx, error="mfa_code_wrong", status=400))
        if checked is not Checked.RIGHT:
            return self._code_page(ctx, error=checked.value, status=400)
        t0 = now()
        if ctx.enrolling:
            # One factor at a time: the new phone replaces whatever was enrolled before.
            db.session.execute(delete(Factor).where(Factor.user_id == ctx.user.id))
            db.session.add(Factor(user_id=ctx.user.id, type=TYPE, phone=number,
                                  created_at=t0, confirmed_at=t0, last_used_at=t0))
            return Done((AMR,), enrolled=True)
        factor = self._factor(ctx)
        if factor is None or factor.phone != number:
            return self._code_page(ctx, error=Checked.EXPIRED.value, status=400)
        factor.last_used_at = t0
        return Done((AMR,))

    # -- helpers ---------------------------------------------------------------------

    def _factor(self, ctx: StepContext) -> Factor | None:
        return confirmed_factor(ctx.user, TYPE)

    def _phone_page(self, ctx: StepContext, *, error: str | None = None, status: int = 200,
                    typed: str = "", retry_after: int | None = None, wait: str = "") -> Show:
        return Show("mfa/sms_phone.html", {"typed": typed, "wait": wait},
                    error=error, status=status, retry_after=retry_after)

    def _code_page(self, ctx: StepContext, *, error: str | None = None, status: int = 200,
                   sent: bool = False, retry_after: int | None = None, wait: str = "") -> Show:
        number = ctx.state.get("phone")
        return Show("mfa/sms_code.html",
                    {"masked": phone.mask(number) if number else "", "sent": sent,
                     "wait": wait, "minutes": self.config.minutes, "remember_offered": True},
                    error=error, status=status, retry_after=retry_after)
