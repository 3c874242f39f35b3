"""Contract console for owners and admins: users, invitations, mails, line IDs (SPEC §10).

Signed in with the provider's browser session; every request re-reads the caller and
checks role and contract, so a demotion, a disabled account or an ended contract takes
effect at once. Targets are looked up within the caller's contract only (404 otherwise).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from .. import audit_log, contracts, email_change, invitations, lines, user_admin
from .. import login_method_change as method_change
from .. import session as sessions
from ..accounts import AccountError
from ..db import db
from ..i18n import MESSAGES, t
from ..lines import LineIdError
from ..mfa import enrolment
from ..models import Contract, ContractLine, MailMessage, User
from ..notify import mail
from ..oauth.tokens import revoke_access_tokens
from ..web import language
from .contract_settings import local_time

bp = Blueprint("admin", __name__)

ADMIN_ROLES = ("owner", "admin")
#: Where a refused POST sends the caller back to after signing in (a POST is not replayed).
_LINE_ENDPOINTS = ("admin.add_line", "admin.remove_line")


@bp.before_request
def _require_admin() -> Response | None:
    # The store is read here, before any ORM write of the request (SQLite lock rule).
    session = sessions.current()
    caller = db.session.get(User, session.user_id) if session else None
    epoch = getattr(session, "epoch", None)
    if caller is None or (epoch is not None and epoch != caller.session_epoch):
        # Not signed in, or signed in before a revocation: sign in (again) and come back
        # (to the page itself; after a refused POST, to its list page, as a POST is not replayed).
        back = request.full_path.rstrip("?") if request.method == "GET" else url_for(
            "admin.lines_list" if request.endpoint in _LINE_ENDPOINTS else "admin.users")
        return redirect(url_for("login.login", next=back))
    if caller.role not in ADMIN_ROLES or not contracts.user_usable(caller, epoch=epoch):
        abort(403)
    g.admin = caller
    return None


def _caller() -> User:
    return g.admin


def _target(user_id: str) -> User:
    target = user_admin.find(_caller(), user_id)
    if target is None:
        abort(404)
    return target


def _delivered(message: MailMessage, done: str) -> None:
    """After the commit: send now, and say so, or say it is delayed (it is retried)."""
    if mail.deliver(message):
        flash(done, "info")
    else:
        flash(t("mail_delayed"), "error")


def _detail(target: User, *, error: str | None = None, email: str | None = None,
            status: int = 200) -> Response:
    pending_email = email_change.live_ticket(target, "email_change")
    pending_method = email_change.live_ticket(target, method_change.KIND)
    body = render_template(
        "admin/user.html", caller=_caller(), target=target, error=error,
        email=target.email if email is None else email,
        method=method_change.method_name(target.login_method),
        pending_email=pending_email.email if pending_email else None,
        pending_method=pending_method is not None, roles=user_admin.ASSIGNABLE_ROLES,
        factors=[_factor_text(f) for f in enrolment.enrolled(target)],
        browsers=user_admin.remembered_browsers(target),
    )
    return Response(body, status=status)


def _factor_text(factor: enrolment.Enrolled) -> str:
    """``SMS (+81 90-****-5678), 2026-01-05 10:00`` in the page's language."""
    key = f"mfa_reset_factor_{factor.type}"
    name = t(key, phone=factor.masked_phone or "") if key in MESSAGES else factor.type
    return t("mfa_reset_factor_enrolled", factor=name, at=local_time(factor.enrolled_at))


def _back(target: User) -> Response:
    return redirect(url_for("admin.user", user_id=target.id))


@bp.get("/admin")
def home() -> Response:
    return redirect(url_for("admin.users"))


@bp.get("/admin/users")
def users() -> Response:
    query = request.args.get("q", "")
    try:
        page = int(request.args.get("page", "1"))
    except ValueError:
        page = 1
    result = user_admin.search(_caller(), query, page)
    return Response(render_template("admin/users.html", caller=_caller(), query=query.strip(),
                                    result=result))


@bp.route("/admin/users/invite", methods=["GET", "POST"])
def invite() -> Response:
    form = {"name": request.form.get("name", ""), "email": request.form.get("email", ""),
            "role": request.form.get("role", "user"),
            "lang": request.form.get("lang", language())}
    if request.method == "GET":
        return Response(render_template("admin/invite.html", form=form, error=None))
    try:
        invited = invitations.invite(_caller(), name=form["name"], email=form["email"],
                                     role=form["role"], lang=form["lang"])
        db.session.commit()
    except AccountError as exc:
        db.session.rollback()
        return Response(render_template("admin/invite.html", form=form, error=t(str(exc))),
                        status=400)
    key = "admin_invitation_resent" if invited.resent else "admin_invited"
    _delivered(invited.message, t(key, email=invited.user.email))
    return _back(invited.user)


@bp.get("/admin/users/<user_id>")
def user(user_id: str) -> Response:
    return _detail(_target(user_id))


@bp.post("/admin/users/<user_id>/resend")
def resend(user_id: str) -> Response:
    target = _target(user_id)
    try:
        message = invitations.resend(_caller(), target)
        db.session.commit()
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), status=400)
    _delivered(message, t("admin_invitation_resent", email=target.email))
    return _back(target)


@bp.post("/admin/users/<user_id>/cancel")
def cancel_invitation(user_id: str) -> Response:
    target = _target(user_id)
    try:
        invitations.cancel(_caller(), target)
        db.session.commit()
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), status=400)
    flash(t("admin_invitation_cancelled", email=target.email), "info")
    return redirect(url_for("admin.users"))


@bp.post("/admin/users/<user_id>/role")
def role(user_id: str) -> Response:
    target = _target(user_id)
    try:
        digests = user_admin.change_role(_caller(), target, request.form.get("role", ""))
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), status=400)
    revoke_access_tokens(*digests)
    flash(t("admin_role_changed"), "info")
    return _back(target)


@bp.post("/admin/users/<user_id>/disable")
def disable(user_id: str) -> Response:
    target = _target(user_id)
    try:
        digests = user_admin.disable(_caller(), target)
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), status=400)
    revoke_access_tokens(*digests)
    flash(t("admin_disabled"), "info")
    return _back(target)


@bp.post("/admin/users/<user_id>/enable")
def enable(user_id: str) -> Response:
    target = _target(user_id)
    try:
        user_admin.enable(_caller(), target)
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), status=400)
    flash(t("admin_enabled"), "info")
    return _back(target)


@bp.post("/admin/users/<user_id>/two-step/reset")
def reset_two_step(user_id: str) -> Response:
    """Reset the user's 2-step enrolment (a lost phone): they enrol again at next sign-in."""
    target = _target(user_id)
    try:
        notice = user_admin.reset_enrolment(_caller(), target)
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), status=400)
    if notice is not None:
        _delivered(notice, t("mfa_reset_admin_done_mailed", email=target.email))
    else:
        flash(t("mfa_reset_admin_done"), "info")
    return _back(target)


@bp.post("/admin/users/<user_id>/email")
def email(user_id: str) -> Response:
    """The manual's email-change form: a changed address gets an email-change link, an
    unchanged one a login-method-change link. A confirmation page comes first."""
    target = _target(user_id)
    typed = request.form.get("email", "")
    try:
        address, changed = user_admin.email_form_choice(target, typed)
    except AccountError as exc:
        status = 403 if str(exc) == "admin_owner_uses_settings" else 400
        return _detail(target, error=t(str(exc)), email=typed, status=status)
    conflicting = method_change.KIND if changed else "email_change"
    if email_change.live_ticket(target, conflicting) is not None:
        key = ("email_change_while_method_change" if changed
               else "admin_method_change_while_email_change")
        return _detail(target, error=t(key), email=typed, status=400)
    if request.form.get("confirmed") != "yes":
        return Response(render_template("admin/confirm_email.html", target=target,
                                        address=address, changed=changed))
    try:
        message = user_admin.send_email_form(_caller(), target, address, changed)
        db.session.commit()
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), email=typed, status=400)
    done = "admin_email_change_sent" if changed else "admin_method_change_sent"
    _delivered(message, t(done, email=address))
    return _back(target)


@bp.post("/admin/users/<user_id>/sessions/revoke")
def revoke_sessions(user_id: str) -> Response:
    """Sign the user out everywhere: sessions, refresh and access tokens (confirmed first)."""
    target = _target(user_id)
    if request.form.get("confirmed") != "yes":
        return _confirm_revocation(target, "sessions")
    try:
        digests = user_admin.sign_out_everywhere(_caller(), target)
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), status=400)
    revoke_access_tokens(*digests)  # after the commit (the SQLite lock rule)
    flash(t("admin_audit_sessions_revoked", email=target.email), "info")
    return _back(target)


@bp.post("/admin/users/<user_id>/browsers/forget")
def forget_browsers(user_id: str) -> Response:
    """Forget the user's remembered browsers: 2-step verification is asked again."""
    target = _target(user_id)
    if request.form.get("confirmed") != "yes":
        return _confirm_revocation(target, "browsers")
    try:
        count = user_admin.forget_browsers(_caller(), target)
    except AccountError as exc:
        db.session.rollback()
        return _detail(target, error=t(str(exc)), status=400)
    flash(t("admin_audit_browsers_forgotten", count=str(count)), "info")
    return _back(target)


def _confirm_revocation(target: User, what: str) -> Response:
    action = ("admin.revoke_sessions" if what == "sessions" else "admin.forget_browsers")
    return Response(render_template("admin/confirm_revocation.html", target=target, what=what,
                                    action=url_for(action, user_id=target.id)))


# -- the contract's audit log (SPEC §10: who, what, when, from where) -------------------------


def _action_label(action: str) -> str:
    key = "admin_audit_action_" + action.replace(".", "_")
    return t(key) if key in MESSAGES else ""


@bp.get("/admin/audit")
def audit() -> Response:
    args = request.args
    filters = audit_log.Filters(action=args.get("action", ""), user=args.get("user", ""),
                                since=args.get("from", ""), until=args.get("to", ""))
    try:
        page = int(args.get("page", "1"))
    except ValueError:
        page = 1
    error, status = None, 200
    try:
        result = audit_log.page_of(_caller().contract_id, filters, page)
    except audit_log.FilterError as exc:
        error, status = t(str(exc)), 400
        result = audit_log.Page([], 0, 1, 1)
    query = {k: v for k, v in (("action", filters.action.strip()), ("user", filters.user.strip()),
                               ("from", filters.since.strip()), ("to", filters.until.strip()))
             if v}
    body = render_template("admin/audit.html", caller=_caller(), result=result, query=query,
                           error=error, label=_action_label,
                           prefixes=("signin.", "mfa.", "user.", "password.", "contract."))
    return Response(body, status=status)


# -- line IDs (回線認証設定, SPEC §7) ------------------------------------------------------


def _contract() -> Contract:
    contract = db.session.get(Contract, _caller().contract_id)
    if contract is None:
        abort(403)
    return contract


def _registrants(rows: list[ContractLine], contract_id: str) -> dict[str, str]:
    """``user:<id>`` -> that person's email, for the people of this contract only."""
    ids = {r.created_by.removeprefix("user:") for r in rows if r.created_by.startswith("user:")}
    if not ids:
        return {}
    people = db.session.scalars(select(User).where(User.id.in_(ids),
                                                   User.contract_id == contract_id))
    return {f"user:{u.id}": u.email for u in people}


def _lines_page(*, error: str | None = None, typed: str = "", status: int = 200) -> Response:
    contract = _contract()
    rows = lines.listing(contract)
    body = render_template(
        "admin/lines.html", caller=_caller(), route=contract.access_route, lines=rows,
        registrants=_registrants(rows, contract.id), local_time=local_time, error=error,
        typed=typed)
    return Response(body, status=status)


def _lock_contract() -> Contract:
    """The caller's contract, re-read after taking its row lock until the commit.

    Removals of the last lines and an access-route change (it writes the same row) are
    serialised, so two admins removing the contract's last two lines at once cannot both
    miss the line-only warning. A no-op write takes PostgreSQL's row lock and SQLite's
    write lock alike.
    """
    contract_id = _caller().contract_id
    db.session.execute(update(Contract).where(Contract.id == contract_id)
                       .values(access_route=Contract.access_route)
                       .execution_options(synchronize_session=False))
    contract = db.session.get(Contract, contract_id, populate_existing=True)
    if contract is None:
        abort(403)
    return contract


@bp.get("/admin/lines")
def lines_list() -> Response:
    return _lines_page()


@bp.post("/admin/lines")
def add_line() -> Response:
    typed = request.form.get("line_id", "")
    try:
        row = lines.register(_contract(), typed, actor=_caller())
        db.session.commit()
    except LineIdError as exc:
        db.session.rollback()
        return _lines_page(error=t(str(exc)), typed=typed, status=400)
    except IntegrityError:
        # The same ID registered by someone else in the same moment (unique constraint).
        db.session.rollback()
        return _lines_page(error=t("line_id_taken"), typed=typed, status=400)
    flash(t("admin_lines_added", line_id=row.line_id), "info")
    return redirect(url_for("admin.lines_list"))


@bp.post("/admin/lines/<line_id>/remove")
def remove_line(line_id: str) -> Response:
    """Remove a line ID. Under ``line-only`` the last one is removed only after a warning:
    without a registered line nobody signs in but the owner's break-glass (SPEC §7)."""
    contract = _lock_contract()
    row = lines.find(contract.id, line_id)
    if row is None:
        db.session.rollback()
        abort(404)
    count = db.session.scalar(select(func.count()).select_from(ContractLine)
                              .where(ContractLine.contract_id == contract.id))
    if (contract.access_route == "line-only" and count == 1
            and request.form.get("confirmed") != "yes"):
        db.session.rollback()
        return Response(render_template("admin/confirm_line_removal.html", line_id=row.line_id))
    lines.remove(contract, row.line_id, actor=_caller())
    db.session.commit()
    flash(t("admin_lines_removed", line_id=line_id), "info")
    return redirect(url_for("admin.lines_list"))
