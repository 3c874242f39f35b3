"""The step-up chain's pages (SPEC §4.3-4.5): whatever step the flow is on, rendered.

Steps answer outcomes (``idp.mfa.base``); this blueprint renders them, counts wrong codes
against the user (``mfa.failures_per_user`` per ``accounts.rate_window``, then 429), keeps
the recovery code on screen until "I saved it" is ticked and hands the flow back to
``idp.flow.dispatch``. State lives in the flow, bound to the browser that began it.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request

from .. import audit
from .. import flow as flows
from .. import session as sessions
from ..clock import now
from ..db import db
from ..i18n import t
from ..mfa.base import Done, Outcome, Show, StepContext, Wrong
from ..models import Contract, User
from ..ratelimit import Limit
from ..web import brand, language

bp = Blueprint("mfa", __name__)


def _error_page(key: str, status: int = 400) -> Response:
    return Response(render_template("error.html", error=t("mfa_title"), description=t(key)),
                    status=status)


def _nothing_offered(page: _Page) -> Response:
    """No step of the pending group can run: a group that does not enrol (break-glass)
    met a user with nothing enrolled, or the configuration offers nothing."""
    assert page.pending is not None
    audit.record("mfa.nothing_offered", actor=audit.actor_of(page.user),
                 target=f"user:{page.user.id}", contract_id=page.user.contract_id,
                 reason=page.pending.reason)
    db.session.commit()
    key = "mfa_nothing_offered" if page.pending.group.enrol else "mfa_enrolled_factor_needed"
    return _error_page(key, 403)


def _failures() -> Limit:
    s = current_app.extensions["idp.settings"]
    return Limit("mfa-failures", s.mfa_failures_per_user, s.rate_window)


class _Page:
    """The flow, its user and the step the user is on, for one request."""

    def __init__(self, flow: flows.LoginFlow, user: User, contract: Contract):
        self.flow, self.user, self.contract = flow, user, contract
        self.pending = flows.pending(flow, user, contract)

    def context(self, name: str | None, *, enrolling: bool) -> StepContext:
        """The context of step ``name`` (None: a probe that keeps no state)."""
        state = self.flow.step_state.setdefault(name, {}) if name else {}
        return StepContext(user=self.user, contract=self.contract, brand=brand(),
                           lang=language(), state=state, enrolling=enrolling,
                           flow_id=self.flow.id, route=self.flow.route,
                           line_id=self.flow.line_id, carrier=self.flow.carrier)

    def choose(self, wanted: str | None):
        """(step, ctx, the offered steps) for the pending group; step None: nothing fits."""
        assert self.pending is not None
        chain = flows.chain()
        group = self.pending.group
        enrolling = chain.enrolling(group, self.context(None, enrolling=False))
        offered = chain.offered(group, self.context(None, enrolling=enrolling))
        names = [s.name for s in offered]
        name = next((n for n in (wanted, self.flow.active_step) if n in names),
                    names[0] if names else None)
        if name is None:
            return None, None, offered
        self.flow.active_step = name
        return chain.steps[name], self.context(name, enrolling=enrolling), offered


def _load() -> tuple[flows.LoginFlow | None, _Page | Response | None]:
    flow = flows.load(request.values.get("flow"), sessions.browser_id())
    if flow is None:
        return None, _error_page("flow_expired")
    flows.use_ui_locales(flow)
    if flow.user_id is None or flow.login_done:
        return flow, None  # nothing to verify here: dispatch decides
    user = db.session.get(User, flow.user_id)
    contract = db.session.get(Contract, user.contract_id) if user is not None else None
    if user is None or contract is None or not flows.still_valid(flow, user, contract):
        return flow, flows.restart(flow)
    return flow, _Page(flow, user, contract)


def _render(page: _Page, step, ctx: StepContext, offered, show: Show) -> Response:
    body = render_template(
        show.template, flow_id=page.flow.id, step=step.name, enrolling=ctx.enrolling,
        error=t(show.error, **{k: v for k, v in show.context.items() if isinstance(v, str)})
        if show.error else None,
        alternatives=[(s.name, s.label) for s in offered if s.name != step.name],
        user=page.user, **show.context)
    response = Response(body, status=show.status)
    if show.retry_after is not None:
        response.headers["Retry-After"] = str(show.retry_after)
    return response


def _commit(ctx: StepContext) -> None:
    db.session.commit()
    for action in ctx.after_commit:
        action()
    ctx.after_commit.clear()


def _after(page: _Page, step, ctx: StepContext, offered, outcome: Outcome) -> Response:
    """Commit what the step did, save the flow (in that order: on SQLite the store waits
    for the ORM's write lock), then show its page or go on."""
    flow = page.flow
    if isinstance(outcome, Show):
        _commit(ctx)
        flows.save(flow)
        return _render(page, step, ctx, offered, outcome)
    assert isinstance(outcome, Done)
    flow.steps.append({"step": step.name, "amr": list(outcome.amr), "at": now()})
    flow.step_state.pop(step.name, None)
    flow.active_step = None
    if outcome.enrolled:
        flow.enrolled = True
        assert page.pending is not None
        flow.recovery_code = flows.chain().after_enrolment(page.pending.group, ctx)
        audit.record("mfa.enrolled", actor=audit.actor_of(page.user),
                     target=f"user:{page.user.id}", contract_id=page.user.contract_id,
                     factor=step.name)
    else:
        flow.recovery_code = outcome.recovery_code or flow.recovery_code
        audit.record("mfa.verified", actor=audit.actor_of(page.user),
                     target=f"user:{page.user.id}", contract_id=page.user.contract_id,
                     factor=step.name, reason=page.pending.reason if page.pending else "")
    _commit(ctx)
    flows.save(flow)
    if flow.recovery_code:
        return _recovery_code_page(flow)
    return flows.dispatch(flow)


def _recovery_code_page(flow: flows.LoginFlow, *, error: str | None = None) -> Response:
    return Response(render_template("mfa/recovery_code.html", flow_id=flow.id,
                                    code=flow.recovery_code, enrolled=flow.enrolled,
                                    error=t(error) if error else None),
                    status=400 if error else 200)


@bp.get("/mfa")
def page() -> Response:
    flow, page = _load()
    if not isinstance(page, _Page):
        return page if page is not None else flows.dispatch(flow)  # type: ignore[arg-type]
    if flow.recovery_code:  # type: ignore[union-attr]
        return _recovery_code_page(flow)  # type: ignore[arg-type]
    if page.pending is None:
        return flows.dispatch(page.flow)
    step, ctx, offered = page.choose(request.args.get("step"))
    if step is None:
        return _nothing_offered(page)
    outcome = step.begin(ctx)
    if isinstance(outcome, Wrong):
        outcome = outcome.page
    return _after(page, step, ctx, offered, outcome)


@bp.post("/mfa")
def submit() -> Response:
    flow, page = _load()
    if not isinstance(page, _Page):
        return page if page is not None else flows.dispatch(flow)  # type: ignore[arg-type]
    if page.pending is None or page.flow.recovery_code:
        return flows.dispatch(page.flow) if not page.flow.recovery_code \
            else _recovery_code_page(page.flow)
    step, ctx, offered = page.choose(request.form.get("step"))
    if step is None:
        return _nothing_offered(page)
    if request.form.get("step") != step.name:
        # A form of a step no longer on offer (another tab switched): show the current one.
        return _after(page, step, ctx, offered, step.begin(ctx))
    failures = _failures()
    if failures.exceeded(page.user.id):
        show = Show("mfa/limited.html", error="mfa_too_many_failures", status=429,
                    retry_after=failures.retry_after())
        return _render(page, step, ctx, offered, show)
    outcome = step.verify(ctx, request.form)
    if isinstance(outcome, Done) and request.form.get("remember") == "yes":
        page.flow.remember = True
    if isinstance(outcome, Wrong):
        # Nothing a wrong code did is kept; then count it (store after the rollback).
        db.session.rollback()
        ctx.after_commit.clear()
        failures.hit(page.user.id)
        audit.record("mfa.failed", actor=audit.actor_of(page.user),
                     target=f"user:{page.user.id}", contract_id=page.user.contract_id,
                     factor=step.name)
        outcome = outcome.page
    return _after(page, step, ctx, offered, outcome)


@bp.post("/mfa/saved")
def saved() -> Response:
    """"I saved the recovery code" (SPEC §4.4): only then does the flow go on."""
    flow, page = _load()
    if flow is None:
        return page  # type: ignore[return-value]
    if not flow.recovery_code:
        return flows.dispatch(flow)
    if request.form.get("saved") != "yes":
        return _recovery_code_page(flow, error="mfa_tick_saved")
    flow.recovery_code = None
    flows.save(flow)
    if flow.enrolled:
        # The manual's completion page (2段階認証完了) with its "sign in" button.
        return Response(render_template("mfa/done.html", flow_id=flow.id))
    return flows.dispatch(flow)


@bp.post("/mfa/continue")
def proceed() -> Response:
    flow, page = _load()
    if flow is None:
        return page  # type: ignore[return-value]
    if flow.recovery_code:
        return _recovery_code_page(flow)
    return flows.dispatch(flow)
