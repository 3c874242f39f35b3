"""Line authentication (回線認証, SPEC §7): a silent step of the chain.

Over a line the contract registered, asserted by the carrier's gateway
(``idp.line_route``), the step finishes without a page: the line is the second factor,
something the user has (amr ``urn:idp:amr:line``, acr level 2), so a password sign-in
needs no 2-step verification. The first sign-in over a West Japan line shows the one-time
"notify line information" (回線情報通知) consent page; the answer is kept per line.
Anything else (no line ID, an unregistered line, the internet under ``line-only``) ends on
a page that says what the contract's admin must check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import audit, lines
from ..clock import now
from ..line_route import LINE
from ..settings import Settings
from .base import Done, Outcome, Show, StepContext

TYPE = "line"
#: RFC 8176 has no value for a network line; ours, collision-resistant as §6.1 asks.
AMR = "urn:idp:amr:line"


@dataclass(frozen=True)
class Config:
    """Nothing to configure here: hosts, header names and gateways are ``[line]``."""


def open(config: Config, settings: Settings) -> LineStep:
    return LineStep()


class LineStep:
    name = TYPE
    enrols = False
    label = "mfa_use_line"

    def usable(self, ctx: StepContext) -> bool:
        # Always on offer where its group applies: when the line does not count, the step
        # itself says why (a page), rather than the chain's "nothing to offer".
        return True

    def begin(self, ctx: StepContext) -> Outcome:
        registered = lines.find(ctx.contract.id, ctx.line_id) if ctx.route == LINE else None
        if registered is None:
            audit.record("signin.line_refused", actor=audit.actor_of(ctx.user),
                         target=f"user:{ctx.user.id}", contract_id=ctx.user.contract_id,
                         route=ctx.route, line_id=ctx.line_id or "",
                         access_route=ctx.contract.access_route)
            return Show("mfa/line_refused.html",
                        {"line_id": ctx.line_id or "", "on_line": ctx.route == LINE,
                         "line_only": ctx.contract.access_route == "line-only"},
                        status=403)
        if ctx.carrier == "west" and registered.notify_consent_at is None:
            return Show("mfa/line_notify.html", {"line_id": registered.line_id})
        return Done((AMR,))

    def verify(self, ctx: StepContext, form: Mapping[str, str]) -> Outcome:
        registered = lines.find(ctx.contract.id, ctx.line_id) if ctx.route == LINE else None
        if registered is None or ctx.carrier != "west" or registered.notify_consent_at:
            return self.begin(ctx)
        answer = form.get("notify")
        if answer != "yes":
            return Show("mfa/line_notify.html", {"line_id": registered.line_id},
                        error="line_notify_required", status=400)
        registered.notify_consent_at = now()
        audit.record("contract.line_notify_consented", actor=audit.actor_of(ctx.user),
                     target=f"contract:{ctx.contract.id}", contract_id=ctx.contract.id,
                     line_id=registered.line_id)
        return Done((AMR,))
