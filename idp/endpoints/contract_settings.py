"""Contract items of the settings menu: access route, 2-step, AD, details, plan, cancellation.

Only the owner reaches them (SPEC §2 via ``settings_access.requires``). Pages that change
the whole contract show what will happen and act on a second, explicit POST.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Response, render_template, request

from .. import ad_settings, contracts, lines, settings_session
from .. import contract_settings as changes
from ..db import db
from ..i18n import t
from ..models.contract import ACCESS_ROUTES
from ..oauth.tokens import revoke_access_tokens
from ..settings_access import Caller, requires

bp = Blueprint("contract_settings", __name__)

ENDPOINTS: dict[str, str] = {
    "access_route": "contract_settings.access_route",
    "two_step": "contract_settings.two_step",
    "active_directory": "contract_settings.active_directory",
    "contract_details": "contract_settings.details",
    "plan_change": "contract_settings.plan",
    "cancellation": "contract_settings.cancel",
}
#: Dates are shown as the customers live them (the service is Japanese).
_JST = timezone(timedelta(hours=9), "JST")


def local_time(epoch: int | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).astimezone(_JST).strftime("%Y-%m-%d %H:%M")


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status)


def _done(title: str, message: str, **extra: Any) -> Response:
    return _page("settings/done.html", title=t(title), message=t(message), back_to_menu=True,
                 **extra)


# -- access route (アクセス経路設定) ------------------------------------------------------


@bp.route("/settings/access-route", methods=["GET", "POST"])
@requires("access_route")
def access_route(who: Caller) -> Response:
    contract = who.contract
    if request.method == "GET":
        return _page("settings/access_route.html", step="choose", current=contract.access_route)
    route = request.form.get("route", "")
    if route not in ACCESS_ROUTES:
        return _page("settings/access_route.html", 400, step="choose",
                     current=contract.access_route, error=t("settings_choose_one"))
    if request.form.get("step") != "confirm":
        # 設定 -> the confirmation page (アクセス経路変更確認); 変更 there applies it.
        return _page("settings/access_route.html", step="confirm", current=contract.access_route,
                     route=route, no_lines=not lines.listing(contract))
    changes.change_access_route(contract, route, actor=who.user)
    db.session.commit()
    return _done("settings_route_done_title", "settings_route_done", route=route)


# -- 2-step verification (2段階認証設定, SPEC §8) ----------------------------------------


@bp.route("/settings/two-step", methods=["GET", "POST"])
@requires("two_step")
def two_step(who: Caller) -> Response:
    contract = who.contract
    forced_off = contract.access_route == "line-only"

    def page(status: int = 200, **context: Any) -> Response:
        return _page("settings/two_step.html", status, enabled=contract.two_step_enabled,
                     forced_off=forced_off, keep_on_reset=contract.two_step_keep_on_reset,
                     **context)

    if request.method == "GET":
        return page(step="choose")
    if request.form.get("step") == "keep_on_reset":
        # The password-reset policy is its own form: it applies whether 2-step is on, off
        # or forced off (the enrolment also guards the owner's break-glass sign-in).
        keep = request.form.get("keep_on_reset") == "yes"
        changes.set_two_step_keep_on_reset(contract, keep, actor=who.user)
        db.session.commit()
        return _done("settings_two_step_done_title",
                     "mfa_reset_keep_done_on" if keep else "mfa_reset_keep_done_off")
    if forced_off:
        # Line authentication replaces it: there is nothing to switch (SPEC §7).
        return page(409, step="choose", error=t("settings_two_step_forced_off"))
    choice = request.form.get("two_step", "")
    if choice not in ("enabled", "disabled"):
        return page(400, step="choose", error=t("settings_choose_one"))
    if request.form.get("step") != "confirm":
        return page(step="confirm", choice=choice)
    if choice == "disabled" and request.form.get("acknowledged") != "yes":
        # The risk warning must have been read: checked here, not only by the browser.
        return page(400, step="confirm", choice=choice, error=t("settings_two_step_tick"))
    changes.set_two_step(contract, choice == "enabled", actor=who.user)
    db.session.commit()
    return _done("settings_two_step_done_title",
                 "settings_two_step_done_on" if choice == "enabled"
                 else "settings_two_step_done_off")


# -- Active Directory (Active Directory設定) ---------------------------------------------


@bp.route("/settings/active-directory", methods=["GET", "POST"])
@requires("active_directory")
def active_directory(who: Caller) -> Response:
    contract = who.contract
    stored = ad_settings.public_view(contract.ad_settings)

    def page(status: int = 200, **context: Any) -> Response:
        return _page("settings/active_directory.html", status,
                     connection_id=contract.connection_id,
                     ad_type=(contract.ad_settings or {}).get("type"),
                     has_password=bool((contract.ad_settings or {}).get("bind_password_enc")),
                     **context)

    if request.method == "GET":
        return page(values=stored)
    form = request.form.to_dict()
    try:
        values = ad_settings.validate(form, contract.ad_settings)
    except ad_settings.ADSettingsError as exc:
        shown = {k: v for k, v in form.items() if k not in ("bind_password", "csrf_token")}
        return page(400, values=shown, error=t(exc.key), error_field=exc.field)
    connection_id = changes.save_ad_settings(contract, values, actor=who.user)
    db.session.commit()
    return _done("settings_ad_done_title", "settings_ad_done", connection_id=connection_id)


# -- contract details (契約情報変更) ------------------------------------------------------


@bp.route("/settings/contract", methods=["GET", "POST"])
@requires("contract_details")
def details(who: Caller) -> Response:
    if request.method == "GET":
        return _page("settings/contract.html", values=changes.details_of(who.contract),
                     errors={})
    values, errors = changes.validate_details(request.form.to_dict())
    if errors:
        return _page("settings/contract.html", 400, values=values,
                     errors={k: t(v) for k, v in errors.items()})
    changes.change_details(who.contract, values, actor=who.user)
    db.session.commit()
    return _done("settings_details_done_title", "settings_details_done")


# -- plan change (プラン変更) -------------------------------------------------------------


@bp.route("/settings/plan", methods=["GET", "POST"])
@requires("plan_change")
def plan(who: Caller) -> Response:
    contract = who.contract
    possible = changes.plan_change_possible(contract)

    def page(status: int = 200, **context: Any) -> Response:
        return _page("settings/plan.html", status, plan=contract.plan, possible=possible,
                     trial_ended=contracts.state(contract) == "trial_ended",
                     trial_ends_at=local_time(contract.trial_ends_at), **context)

    if request.method == "GET":
        return page(step="choose")
    if not possible:
        return page(409, step="choose", error=t("settings_plan_none"))
    if request.form.get("step") != "confirm":
        return page(step="confirm")
    changes.change_plan_to_basic(contract, actor=who.user)
    db.session.commit()
    return _done("settings_plan_done_title", "settings_plan_done")


# -- cancellation (解約) -----------------------------------------------------------------


@bp.route("/settings/cancel", methods=["GET", "POST"])
@requires("cancellation")
def cancel(who: Caller) -> Response:
    if request.method == "GET":
        return _page("settings/cancel.html")
    if request.form.get("acknowledged") != "yes":
        return _page("settings/cancel.html", 400, error=t("settings_cancel_tick"))
    digests = changes.cancel(who.contract, actor=who.user)
    db.session.commit()
    if digests:
        revoke_access_tokens(*digests)
    response = _page("settings/cancelled.html")
    # The epoch bump already voids it; the cookie goes too.
    settings_session.end(response)
    return response
