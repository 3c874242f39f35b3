"""E-mail factor: a 6-digit code mailed to the user's login address (amr ``mca``).

Nothing to enrol: the address is the login ID, where invitation, reset and unlock links
already go. Off by default; an operator adds ``"email_otp"`` to a group of
``[[mfa.chain]]``. Codes behave as SMS codes do (``idp.mfa.codes``).

``enrols = False``: in an ``any`` group it is offered to users who already have a factor,
not on the first sign-in, where the chain enrols SMS or the authenticator app and issues
the recovery code (SPEC §4.4). Offered then, it would let every user skip enrolment for
good, with a factor that proves only access to the mailbox that can also reset the
password. (In an ``all`` group every step runs, so there it is asked of everyone.) For the
same reason it is never usable for a contract with ``two_step_keep_on_reset``: that policy
promises that the mailbox alone (a reset link) does not pass 2-step verification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import audit
from ..notify import mail
from ..settings import Settings
from .base import Done, Outcome, Show, StepContext, Wrong
from .codes import Checked, CodeConfig, Refusal, SentCodes

TYPE = "email_otp"
#: RFC 8176 has no e-mail value. ``otp`` there means a code generator the user holds
#: (RFC 4226/6238; here the authenticator app) and ``sms`` names a phone; ``mca``
#: (multiple-channel authentication: the browser plus a second channel, the mailbox) is
#: registered and says what happened. A private value would mean nothing to RPs.
AMR = "mca"
MAIL_KIND = "email_otp"


@dataclass(frozen=True)
class Config(CodeConfig):
    """Lifetime, tries and send limits of the codes, as for SMS (``codes.CodeConfig``)."""


def open(config: Config, settings: Settings) -> EmailOtpStep:
    # Nothing to check: production already requires smtp_url (idp.settings).
    return EmailOtpStep(config)


def mask(address: str) -> str:
    """``y***@example.com``: enough to recognise one's address, not to read it off a screen."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


class EmailOtpStep:
    name = TYPE
    enrols = False
    label = "mfa_use_email_otp"

    def __init__(self, config: Config):
        self.config = config
        self.codes = SentCodes("email", config)

    def usable(self, ctx: StepContext) -> bool:
        return bool(ctx.user.email) and not ctx.contract.two_step_keep_on_reset

    def begin(self, ctx: StepContext) -> Outcome:
        if self.codes.live(ctx.user.id, ctx.user.email) is not None:
            return self._page(ctx)  # already sent (a reload, a switch back, a new sign-in)
        return self._resend(ctx)

    def verify(self, ctx: StepContext, form: Mapping[str, str]) -> Outcome:
        if form.get("action") == "resend":
            return self._resend(ctx)
        checked = self.codes.check(ctx.user.id, ctx.user.email, form.get("code"))
        if checked is Checked.WRONG:
            return Wrong(self._page(ctx, error="mfa_code_wrong", status=400))
        if checked is not Checked.RIGHT:
            return self._page(ctx, error=checked.value, status=400)
        return Done((AMR,))

    def _resend(self, ctx: StepContext) -> Show:
        code = self.codes.issue(ctx.user.id, ctx.user.email)
        if isinstance(code, Refusal):
            return self._page(ctx, **code.page())
        message = mail.queue(MAIL_KIND, to=ctx.user.email, brand=ctx.brand, lang=ctx.lang,
                             name=ctx.user.name, code=code, minutes=self.config.minutes)
        # After the commit, beside the response: the page does not wait for SMTP, and a
        # failed delivery stays queued for the retries.
        ctx.after_commit.append(lambda: mail.deliver_in_background(message))
        audit.record("mfa.email_otp_sent", actor=audit.actor_of(ctx.user),
                     target=f"user:{ctx.user.id}", contract_id=ctx.user.contract_id,
                     to=mask(ctx.user.email))
        return self._page(ctx, sent=True)

    def _page(self, ctx: StepContext, *, error: str | None = None, status: int = 200,
              sent: bool = False, retry_after: int | None = None, wait: str = "") -> Show:
        return Show("mfa/email_otp.html",
                    {"address": mask(ctx.user.email), "sent": sent, "wait": wait,
                     "minutes": self.config.minutes, "remember_offered": True},
                    error=error, status=status, retry_after=retry_after)
