"""The settings menu (認証・契約情報変更メニュー): its own sign-in, the menu, personal items.

SPEC §2: the menu shows exactly what ``idp.contracts.menu`` allows; every item page checks
``contracts.allowed`` again on GET and POST (``settings_access.requires``). Contract items
live in ``contract_settings.py``.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)

from .. import audit, contracts, linking, settings_session
from .. import email_change as email_changes
from .. import flow as flows
from .. import session as sessions
from ..accounts import AccountError, normalise_email, reset_two_step, set_password
from ..db import db
from ..i18n import MESSAGES, t
from ..mfa import remember
from ..models import Contract, RememberedBrowser
from ..notify import mail
from ..oauth.tokens import revoke_access_tokens
from ..passwords import PolicyViolation
from ..passwords import normalise as normalise_password
from ..security import verify_password
from ..settings_access import PERSONAL, Caller, may_enter, personal_allowed, requires
from ..signin import password_sign_in
from ..web import brand, language
from .connect import begin_link, buttons
from .contract_settings import ENDPOINTS as CONTRACT_ENDPOINTS
from .contract_settings import local_time

bp = Blueprint("settings_menu", __name__)

#: The manual's three groups, in its order: (title key, lead key, items).
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("settings_group_credentials", "settings_group_credentials_lead",
     ("login_method", "email_change", "password_change")),
    ("settings_group_setup", "settings_group_setup_lead",
     ("access_route", "two_step", "active_directory")),
    ("settings_group_contract", "settings_group_contract_lead",
     ("contract_details", "plan_change", "cancellation")),
)
ENDPOINTS: dict[str, str] = {
    "login_method": "settings_menu.login_method",
    "email_change": "settings_menu.email_change",
    "password_change": "settings_menu.password_change",
    **CONTRACT_ENDPOINTS,
}
#: Wrong current passwords on the password page before the settings session ends: the
#: session proves a password was typed, it must not become a guessing oracle.
MAX_WRONG_CURRENT = 5


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(render_template(template, **context), status=status)


# -- sign-in and sign-out -----------------------------------------------------------------


def _login_page(*, error: str | None = None, email: str = "", status: int = 200,
                notice: str | None = None) -> Response:
    return _page("settings/login.html", status, error=error, email=email, notice=notice,
                 upstream=buttons(purpose="settings"))


def _ended_page(message: str, status: int) -> Response:
    return _page("settings/ended.html", status, message=message)


@bp.route("/settings/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        notice = t("settings_signed_out") if request.args.get("signed_out") == "1" else None
        return _login_page(notice=notice)

    email = request.form.get("email", "")
    password = request.form.get("password", "")
    if not email or not password:
        return _login_page(error=t("missing_fields"), email=email, status=400)
    # The owner of a trial that ended within the plan-change window is let in here, and
    # only here: the settings menu is where the plan is changed (SPEC §2).
    result = password_sign_in(email, password, admit_ended_trial_owner=True)
    user = result.user
    if user is not None and result.error is None:
        if may_enter(user, db.session.get(Contract, user.contract_id)):
            # The menu changes credentials and the contract: the step-up chain runs here
            # as on the login page, and the settings session starts when it is satisfied.
            browser = sessions.browser_id()
            flow = flows.begin(None, browser, purpose=flows.SETTINGS)
            response = flows.primary_done(flow, user, method="password", amr=["pwd"])
            sessions.browser_id(response)
            return response
        return _ended_page(t("settings_ended"), 403)
    db.session.commit()
    key = result.error if result.error in MESSAGES else "bad_credentials"
    status = result.status if result.status >= 400 else 401
    if result.contract_state is not None:
        # Only someone who typed the right password learns that the contract has ended.
        return _ended_page(t(key), status)
    response = _login_page(error=t(key), email=email, status=status)
    if result.retry_after:
        response.headers["Retry-After"] = str(result.retry_after)
    return response


@bp.post("/settings/logout")
def logout() -> Response:
    response = redirect(url_for(".login", signed_out="1"))
    settings_session.end(response)
    return response


# -- the menu -------------------------------------------------------------------------


@bp.get("/settings")
@requires(None)
def menu(who: Caller) -> Response:
    allowed = set(contracts.menu(who.user, who.contract))
    groups = [(title, lead, [(item, ENDPOINTS[item]) for item in items if item in allowed])
              for title, lead, items in GROUPS]
    trial_ended = contracts.state(who.contract) == "trial_ended"
    return _page("settings/menu.html", groups=[g for g in groups if g[2]], user=who.user,
                 trial_ended=trial_ended, personal=personal_allowed(who.contract),
                 trial_ends_at=local_time(who.contract.trial_ends_at) if trial_ended else "")


# -- password change ------------------------------------------------------------------


def _revoke_and_commit(user_id: str) -> None:
    """End every other session and token of the user, commit, then drop access tokens."""
    digests = contracts.revoke_user_access([user_id])
    db.session.commit()
    revoke_access_tokens(*digests)


@bp.route("/settings/password", methods=["GET", "POST"])
@requires("password_change")
def password_change(who: Caller) -> Response:
    if request.method == "GET":
        return _page("settings/password.html")

    def error(key: str) -> Response:
        return _page("settings/password.html", 400, error=t(key))

    current = request.form.get("current_password", "")
    new = request.form.get("new_password", "")
    confirmation = request.form.get("new_password_confirmation", "")
    if not current or not new or not confirmation:
        return error("settings_fill_all")
    if not verify_password(current, who.user.password_hash):
        store = current_app.extensions["idp.store"]
        if store.incr(who.session.key + ":wrong", settings_session.IDLE) >= MAX_WRONG_CURRENT:
            response = _login_page(error=t("settings_too_many_wrong"), status=401)
            settings_session.end(response)
            return response
        return error("settings_current_password_wrong")
    if normalise_password(new) != normalise_password(confirmation):
        return error("password_mismatch")
    if normalise_password(new) == normalise_password(current):
        return error("settings_password_unchanged")
    try:
        set_password(who.user, new)
    except PolicyViolation as exc:
        return error(exc.key)
    audit.record("password.changed", actor=audit.actor_of(who.user),
                 target=f"user:{who.user.id}", contract_id=who.user.contract_id,
                 via="settings_menu")
    # A changed password ends the user's other sessions and tokens (a thief's too);
    # this browser gets a fresh settings session under the new epoch.
    _revoke_and_commit(who.user.id)
    response = _page("settings/done.html", title=t("settings_password_done_title"),
                     message=t("settings_password_done"), back_to_menu=True)
    settings_session.start(response, who.user)
    return response


# -- email change (the owner's own; admins send it for others from the console) ---------


@bp.route("/settings/email", methods=["GET", "POST"])
@requires("email_change")
def email_change(who: Caller) -> Response:
    if request.method == "GET":
        return _page("settings/email.html", current=who.user.email)
    new = request.form.get("new_email", "")
    confirmation = request.form.get("new_email_confirmation", "")

    def error(key: str) -> Response:
        return _page("settings/email.html", 400, current=who.user.email, error=t(key),
                     new_email=new, new_email_confirmation=confirmation)

    if not new or not confirmation:
        return error("settings_fill_all")
    if normalise_email(new) != normalise_email(confirmation):
        return error("settings_email_mismatch")
    try:
        message = email_changes.request(who.user, new, actor=who.user, lang=language())
    except AccountError as exc:
        db.session.rollback()
        key = str(exc)
        return error(key if key in MESSAGES else "email_invalid")
    db.session.commit()
    delivered = mail.deliver(message)
    return _page("settings/email_sent.html", address=message.to, delayed=not delivered)


# -- login method (the owner's own; others get a link from the admin console) -----------


@bp.route("/settings/login-method", methods=["GET", "POST"])
@requires("login_method")
def login_method(who: Caller) -> Response:
    choices = linking.choices(who.user, who.contract, brand().connectors)

    label = f"settings_connector_{who.user.login_method}"

    def page(status: int = 200, error: str | None = None) -> Response:
        return _page("settings/login_method.html", status, user=who.user, choices=choices,
                     method_label=t(label) if label in MESSAGES else who.user.login_method,
                     error=error)

    if request.method == "GET":
        return page()
    method = request.form.get("method", "")
    if method != "password":
        # An upstream account is linked through its connector, after the user saw and
        # confirmed it (idp.endpoints.connect); AD never for the owner (not on offer).
        try:
            connector_id = linking.chosen(who.user, who.contract, brand().connectors, method,
                                          request.form.get("connection_id"))
        except AccountError:
            offered = dict(choices)
            return page(409 if method in offered else 400, t("settings_method_not_available"))
        return begin_link(connector_id=connector_id, kind="settings", user=who.user,
                          ticket=None, settings_key=who.session.key)
    password = request.form.get("password", "")
    confirmation = request.form.get("password_confirmation", "")
    if not password or not confirmation:
        return page(400, t("settings_fill_all"))
    if normalise_password(password) != normalise_password(confirmation):
        return page(400, t("password_mismatch"))
    user = who.user
    try:
        set_password(user, password)
    except PolicyViolation as exc:
        return page(400, t(exc.key))
    old = user.login_method
    user.login_method = "password"
    # The manual's way for the owner to reset 2-step enrolment is this very page (5.2).
    notice = reset_two_step(user, reason="login_method_change", actor=user)
    audit.record("login_method.changed", actor=audit.actor_of(user), target=f"user:{user.id}",
                 contract_id=user.contract_id, old=old, new="password", via="settings_menu")
    _revoke_and_commit(user.id)
    if notice is not None:
        mail.deliver(notice)  # never raises; a mail not sent stays queued for a retry
    # Manual: after the change the login page is shown; sign in with the new method.
    response = _page("settings/done.html", title=t("settings_method_done_title"),
                     message=t("settings_method_done"), back_to_login=True)
    settings_session.end(response)
    return response


# -- remembered browsers (the person's own; a personal link, not a SPEC §2 item) --------

#: Characters of a User-Agent shown in the list; the whole label is in the title attribute.
LABEL_SHOWN = 60
#: Record ids are 32-bit: a longer number in the URL names nothing (and would overflow
#: the database driver).
_MAX_ID = 2**31 - 1
_NOTICES = {"revoked": "mfa_browsers_revoked", "revoked_all": "mfa_browsers_revoked_all"}


def _shortened(label: str) -> str:
    return label if len(label) <= LABEL_SHOWN else label[:LABEL_SHOWN - 1] + "…"


@bp.get("/settings/browsers")
@requires(PERSONAL)
def browsers(who: Caller) -> Response:
    current = remember.find(who.user)
    rows = [{"id": row.id, "label": row.label, "short": _shortened(row.label),
             "current": current is not None and row.id == current.id,
             "created": local_time(row.created_at), "last_used": local_time(row.last_seen_at),
             "expires": local_time(row.expires_at)}
            for row in remember.listing(who.user)]
    notice = _NOTICES.get(request.args.get("done", ""))
    return _page("settings/browsers.html", browsers=rows, notice=t(notice) if notice else None)


@bp.post("/settings/browsers/<int:browser_id>/revoke")
@requires(PERSONAL)
def revoke_browser(who: Caller, browser_id: int) -> Response:
    row = db.session.get(RememberedBrowser, browser_id) if browser_id <= _MAX_ID else None
    # Someone else's browser is answered like one that does not exist: an id tells nothing.
    if row is None or row.user_id != who.user.id or not remember.revoke(who.user, browser_id):
        abort(404)
    audit.record("mfa.browser_revoked", actor=audit.actor_of(who.user),
                 target=f"user:{who.user.id}", contract_id=who.user.contract_id,
                 browser_id=row.id, label=row.label)
    db.session.commit()
    return redirect(url_for(".browsers", done="revoked"))


@bp.post("/settings/browsers/revoke-all")
@requires(PERSONAL)
def revoke_all_browsers(who: Caller) -> Response:
    count = remember.revoke_all(who.user)
    if count:
        audit.record("mfa.browsers_revoked_all", actor=audit.actor_of(who.user),
                     target=f"user:{who.user.id}", contract_id=who.user.contract_id,
                     count=count)
    db.session.commit()
    return redirect(url_for(".browsers", done="revoked_all"))
