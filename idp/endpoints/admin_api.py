"""Contract admin JSON API under ``/admin/api/v1`` (SPEC §10; errors per RFC 9457).

The same rules as the HTML console (``idp.endpoints.admin``), through the same domain
functions: ``idp.user_admin``, ``idp.invitations``, ``idp.lines``, ``idp.mfa.enrolment``,
``idp.email_change``, ``idp.login_method_change``, ``idp.audit_log``. The contract's
settings are read-only here: changing them stays the owner's, in the settings menu (SPEC §2).

Two ways in: a bearer access token (RFC 6750) of an admin client of one contract, from
the client_credentials grant with scope ``admin``; or an owner's or admin's browser
session, where unsafe methods also carry ``X-CSRF-Token``. Every target is looked up in
the caller's contract: another contract's user or line is 404, never 403, so ids of other
tenants cannot be probed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, request
from flask_wtf.csrf import generate_csrf, validate_csrf
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException
from wtforms.validators import ValidationError

from .. import audit, audit_log, contracts, invitations, lines, user_admin
from .. import contract_settings as settings_rules
from .. import session as sessions
from ..accounts import AccountError
from ..admin_openapi import document
from ..db import db
from ..i18n import t
from ..lines import LineIdError
from ..mfa import enrolment
from ..models import AuditEvent, Client, Contract, ContractLine, MailMessage, User
from ..notify import mail
from ..oauth.grants import ADMIN_CONTRACT_KEY, ADMIN_SCOPE
from ..oauth.tokens import find_access_token, revoke_access_tokens
from ..security import sha256_hex
from ..web import csrf

PREFIX = "/admin/api/v1"
T = TypeVar("T")

bp = Blueprint("admin_api", __name__, url_prefix=PREFIX)
# Bearer calls need no CSRF token (a browser never adds the header by itself); session
# calls are checked in ``_authenticate`` instead, with the problem response of this API.
csrf.exempt(bp)

ADMIN_ROLES = ("owner", "admin")
MAX_PER_PAGE = 100
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: How long an ``Idempotency-Key`` is remembered (seconds).
IDEMPOTENCY_TTL = 24 * 3600
_IDEMPOTENCY_PREFIX = "admin-api:idem:"
_MAX_KEY = 200
#: Message keys that name a field of the request: 400 with ``errors``; any other
#: ``AccountError`` is a rule of the current state (the owner is fixed, ...): 409.
_FIELD_OF = {
    "admin_name_required": "name", "admin_name_too_long": "name",
    "admin_email_invalid": "email", "admin_role_invalid": "role",
    "admin_lang_invalid": "lang", "line_id_required": "line_id",
    "line_id_invalid": "line_id", "email_invalid": "email",
}
#: Audit-log filter dates, as the console takes them: a day in Japan time.
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ClientCaller:
    """An admin client acting for its contract, shaped like the ``User`` the domain
    functions take as caller: same contract and brand, never a target itself."""

    client_id: str
    contract_id: str
    brand: str
    #: Named as the inviter in invitation mails: the contract's owner, who answers for it.
    email: str
    role: str = "admin"

    @property
    def id(self) -> str:
        return f"client:{self.client_id}"

    @property
    def audit_actor(self) -> str:
        return f"client:{self.client_id}"


class Problem(Exception):
    """An RFC 9457 problem; ``code`` is the stable, machine-readable part."""

    def __init__(self, status: int, code: str, detail: str, *,
                 errors: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                 title: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.errors, self.headers, self.title = errors, headers or {}, title


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content"}


def problem_response(p: Problem) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:idp:problem:{p.code}",
        "title": p.title or _TITLES.get(p.status, "Error"),
        "status": p.status, "detail": p.detail, "code": p.code,
    }
    if p.errors:
        body["errors"] = p.errors
    response = Response(json.dumps(body, ensure_ascii=False), status=p.status,
                        mimetype="application/problem+json")
    response.headers.update(p.headers)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(Problem)
def _problem(exc: Problem) -> Response:
    db.session.rollback()
    return problem_response(exc)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    db.session.rollback()
    status = exc.code or 500
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
    return problem_response(Problem(status, code, exc.description or _TITLES.get(status, "")))


def _json_response(body: Any, status: int = 200) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), status=status,
                        mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


# -- who is calling -------------------------------------------------------------------------


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="admin"'
    if error:
        challenge += f', error="{error}"'
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": challenge})


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _token_caller(raw: str) -> ClientCaller:
    at = find_access_token(raw) if raw and len(raw) <= 512 else None
    if at is None:
        raise _unauthorized("The access token is unknown or expired.", "invalid_token")
    client = db.session.get(Client, at.client_id)
    contract_id = client.meta.get(ADMIN_CONTRACT_KEY) if client is not None else None
    if at.user_id is not None or not contract_id or ADMIN_SCOPE not in at.scope.split():
        raise Problem(403, "insufficient_scope",
                      "The token is not an admin client's token with scope admin.",
                      headers={"WWW-Authenticate": 'Bearer realm="admin", '
                               'error="insufficient_scope", scope="admin"'})
    contract = db.session.get(Contract, contract_id)
    if contract is None or not contracts.usable(contract):
        raise Problem(403, "contract_unusable", "The client's contract has ended.")
    owner = db.session.scalar(select(User).where(User.contract_id == contract.id,
                                                 User.role == "owner"))
    return ClientCaller(client_id=client.client_id, contract_id=contract.id,
                        brand=contract.brand, email=owner.email if owner else "")


def _session_caller() -> User:
    # As the console: the caller is re-read on every request, so a demotion, a disabled
    # account or an ended contract takes effect at once.
    session = sessions.current()
    caller = db.session.get(User, session.user_id) if session else None
    epoch = getattr(session, "epoch", None)
    if caller is None or (epoch is not None and epoch != caller.session_epoch):
        raise _unauthorized("Send a bearer token, or sign in as an owner or admin.")
    if caller.role not in ADMIN_ROLES or not contracts.user_usable(caller, epoch=epoch):
        raise Problem(403, "forbidden", "Only the contract's owner and admins may do this.")
    if request.method in _UNSAFE:
        # A session is sent by the browser on its own: an unsafe call must prove it comes
        # from our page (the token is bound to the session cookie).
        try:
            validate_csrf(request.headers.get("X-CSRF-Token"))
        except ValidationError:
            raise Problem(403, "csrf_failed",
                          "Send the X-CSRF-Token header (GET /admin/api/v1/csrf-token)."
                          ) from None
    return caller


@bp.before_request
def _authenticate() -> None:
    # The store is read here, before any ORM write of the request (SQLite lock rule).
    if request.endpoint == "admin_api.openapi":
        return
    raw = _bearer()
    g.api_caller = _token_caller(raw) if raw is not None else _session_caller()


def _caller() -> User:
    return g.api_caller


def _actor_key() -> str:
    return audit.actor_of(g.api_caller)


# -- request bodies -------------------------------------------------------------------------


def _body(*fields: str, required: tuple[str, ...] = ()) -> dict[str, str]:
    """The JSON object's string ``fields``; a wrong type or a missing field is a 400."""
    data = request.get_json(silent=True, force=True) if request.get_data() else {}
    if not isinstance(data, dict):
        raise Problem(400, "invalid_body", "The body must be a JSON object.")
    errors: dict[str, str] = {}
    out: dict[str, str] = {}
    for name in fields:
        value = data.get(name)
        if value is None:
            if name in required:
                errors[name] = "required"
            continue
        if not isinstance(value, str):
            errors[name] = "must be a string"
            continue
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL: refused here as input, not a 500 later.
            errors[name] = "must not contain NUL"
            continue
        out[name] = value
    if errors:
        raise Problem(400, "validation_failed", "The request has invalid fields.",
                      errors=errors)
    return out


def _committed(key: str | None, write: Callable[[], T]) -> T:
    """Run ``write`` and commit. On any failure nothing is kept: the transaction is rolled
    back and the reserved ``Idempotency-Key`` freed, so a retry really retries."""
    try:
        result = write()
        db.session.commit()
        return result
    except Exception as exc:
        db.session.rollback()
        if key is not None:
            current_app.extensions["idp.store"].delete(key)
        if isinstance(exc, AccountError):
            raise _account_problem(exc) from None
        raise


def _account_problem(exc: AccountError | LineIdError) -> Problem:
    key = str(exc)
    field = _FIELD_OF.get(key)
    try:
        message = t(key)
    except KeyError:
        message = key
    if field:
        return Problem(400, "validation_failed", message, errors={field: message})
    return Problem(409, key, message)


def _text_arg(name: str, limit: int, errors: dict[str, str]) -> str:
    value = request.args.get(name, "")
    if len(value) > limit:
        errors[name] = f"at most {limit} characters"
    elif "\x00" in value:
        errors[name] = "must not contain NUL"  # as in ``_body``
    return value


def _int_arg(name: str, default: int, low: int, high: int, errors: dict[str, str]) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        errors[name] = "must be an integer"
        return default
    if not low <= value <= high:
        errors[name] = f"must be between {low} and {high}"
    return value


# -- representations ------------------------------------------------------------------------


def _user_json(user: User, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": user.id, "email": user.email, "name": user.name, "role": user.role,
        "status": user.status, "login_method": user.login_method, "lang": user.locale,
        "created_at": user.created_at, "updated_at": user.updated_at,
    }
    if detail:
        out["two_step_factors"] = [
            {"type": f.type, "enrolled_at": f.enrolled_at, "masked_phone": f.masked_phone}
            for f in enrolment.enrolled(user)]
    return out


def _line_json(row: ContractLine) -> dict[str, Any]:
    return {"line_id": row.line_id, "created_at": row.created_at,
            "created_by": row.created_by}


def _mail_state(message: MailMessage | None) -> str:
    """After the commit: send now; ``delayed`` when it failed (the outbox retries)."""
    if message is None:
        return "none"
    return "sent" if mail.deliver(message) else "delayed"


def _target(user_id: str) -> User:
    target = user_admin.find(_caller(), user_id)
    if target is None:
        raise Problem(404, "not_found", "No such user in this contract.")
    return target


# -- the API description ----------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi() -> Response:
    return _json_response(document(current_app.extensions["idp.settings"].issuer))


@bp.get("/csrf-token")
def csrf_token() -> Response:
    """For session callers: the token to send as ``X-CSRF-Token`` on unsafe calls."""
    return _json_response({"csrf_token": generate_csrf()})


# -- users ------------------------------------------------------------------------------------


@bp.get("/users")
def list_users() -> Response:
    errors: dict[str, str] = {}
    page = _int_arg("page", 1, 1, 1_000_000, errors)
    per_page = _int_arg("per_page", user_admin.PAGE_SIZE, 1, MAX_PER_PAGE, errors)
    query = _text_arg("q", 200, errors)
    if errors:
        raise Problem(400, "validation_failed", "The query has invalid parameters.",
                      errors=errors)
    result = user_admin.search(_caller(), query, page, per_page=per_page)
    # The console shows the last page for one past it; an API client paging on must see
    # the end, so a page past the last one is empty.
    items = result.users if result.page == page else []
    return _json_response({"total": result.total, "page": page, "per_page": per_page,
                           "items": [_user_json(u) for u in items]})


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    return _json_response(_user_json(_target(user_id), detail=True))


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > _MAX_KEY:
        raise Problem(400, "validation_failed", "Idempotency-Key: 1-200 characters.",
                      errors={"Idempotency-Key": "1-200 characters"})
    # Per caller: two clients' keys never collide, and one cannot replay another's.
    return _IDEMPOTENCY_PREFIX + sha256_hex(f"{_actor_key()}\n{key}")


@bp.post("/users")
def invite_user() -> Response:
    """Invite a user; a retry (same ``Idempotency-Key``) answers 200 with the same user and
    sends nothing, and posting a still-invited address again resends its mail (200)."""
    body = _body("name", "email", "role", "lang", required=("name", "email"))
    body.setdefault("role", "user")
    body.setdefault("lang", "ja")
    store = current_app.extensions["idp.store"]
    key = _idempotency_key()
    fingerprint = sha256_hex(json.dumps(body, sort_keys=True))
    # Reserved before any ORM write (SQLite lock rule); one of two racing retries wins.
    if key is not None and not store.add(key, {"state": "pending", "fp": fingerprint},
                                         IDEMPOTENCY_TTL):
        return _replay(store.get(key) or {}, fingerprint)
    invited = _committed(key, lambda: invitations.invite(
        _caller(), name=body["name"], email=body["email"], role=body["role"],
        lang=body["lang"]))
    state = _mail_state(invited.message)
    if key is not None:
        store.put(key, {"state": "done", "fp": fingerprint, "user_id": invited.user.id},
                  IDEMPOTENCY_TTL)
    return _json_response({"user": _user_json(invited.user), "mail": state},
                          200 if invited.resent else 201)


def _replay(record: dict[str, Any], fingerprint: str) -> Response:
    if record.get("fp") != fingerprint:
        raise Problem(422, "idempotency_key_reused",
                      "This Idempotency-Key was used with a different request.")
    if record.get("state") != "done":
        raise Problem(409, "idempotency_in_progress",
                      "A request with this Idempotency-Key is still in progress.")
    user = user_admin.find(_caller(), str(record.get("user_id", "")))
    if user is None:
        raise Problem(404, "not_found", "The user of this request no longer exists.")
    return _json_response({"user": _user_json(user), "mail": "none",
                           **record.get("extra", {})}, 200)


@bp.post("/users/<user_id>/resend")
def resend(user_id: str) -> Response:
    target = _target(user_id)
    try:
        message = invitations.resend(_caller(), target)
        db.session.commit()
    except AccountError as exc:
        raise _account_problem(exc) from None
    return _json_response({"user": _user_json(target), "mail": _mail_state(message)})


@bp.patch("/users/<user_id>")
def patch_user(user_id: str) -> Response:
    target = _target(user_id)
    body = _body("role", required=("role",))
    try:
        digests = user_admin.change_role(_caller(), target, body["role"])
    except AccountError as exc:
        raise _account_problem(exc) from None
    revoke_access_tokens(*digests)
    return _json_response(_user_json(target))


@bp.post("/users/<user_id>/disable")
def disable(user_id: str) -> Response:
    target = _target(user_id)
    try:
        digests = user_admin.disable(_caller(), target)
    except AccountError as exc:
        raise _account_problem(exc) from None
    revoke_access_tokens(*digests)
    return _json_response(_user_json(target))


@bp.post("/users/<user_id>/enable")
def enable(user_id: str) -> Response:
    target = _target(user_id)
    try:
        user_admin.enable(_caller(), target)
    except AccountError as exc:
        raise _account_problem(exc) from None
    return _json_response(_user_json(target))


@bp.post("/users/<user_id>/two-step/reset")
def reset_two_step(user_id: str) -> Response:
    target = _target(user_id)
    try:
        notice = user_admin.reset_enrolment(_caller(), target)
    except AccountError as exc:
        raise _account_problem(exc) from None
    return _json_response({"user": _user_json(target, detail=True),
                           "mail": _mail_state(notice)})


@bp.post("/users/<user_id>/email")
def email_link(user_id: str) -> Response:
    """The console's email form (this call is its confirmation): a changed address gets
    the email-change link, the unchanged one the login-method-change link; never both
    under way. A retry with the same ``Idempotency-Key`` answers 200 and sends nothing."""
    target = _target(user_id)
    body = _body("email", required=("email",))
    # The console's checks, before anything is reserved or written.
    try:
        address, changed = user_admin.email_form_choice(target, body["email"])
    except AccountError as exc:
        raise _account_problem(exc) from None
    store = current_app.extensions["idp.store"]
    key = _idempotency_key()
    # Bound to this operation and user: the same key on another user is a 422, not a replay.
    fingerprint = sha256_hex(json.dumps({"op": "email", "user": target.id, "email": address}))
    if key is not None and not store.add(key, {"state": "pending", "fp": fingerprint},
                                         IDEMPOTENCY_TTL):
        return _replay(store.get(key) or {}, fingerprint)
    message = _committed(key, lambda: user_admin.send_email_form(_caller(), target, address,
                                                                 changed))
    state = _mail_state(message)
    extra = {"link": "email_change" if changed else "login_method_change", "to": address}
    if key is not None:
        store.put(key, {"state": "done", "fp": fingerprint, "user_id": target.id,
                        "extra": extra}, IDEMPOTENCY_TTL)
    return _json_response({"user": _user_json(target), "mail": state, **extra})


@bp.post("/users/<user_id>/sessions/revoke")
def revoke_sessions(user_id: str) -> Response:
    """Sign the user out everywhere: sessions, refresh and access tokens. The owner's are
    the owner's alone (``user_admin``): an admin client acts as an admin, so 409."""
    target = _target(user_id)
    try:
        digests = user_admin.sign_out_everywhere(_caller(), target)
    except AccountError as exc:
        raise _account_problem(exc) from None
    revoke_access_tokens(*digests)  # after the commit (the SQLite lock rule)
    return _json_response({"user": _user_json(target)})


@bp.post("/users/<user_id>/browsers/forget")
def forget_browsers(user_id: str) -> Response:
    """Forget the user's remembered browsers: 2-step verification is asked again."""
    target = _target(user_id)
    try:
        count = user_admin.forget_browsers(_caller(), target)
    except AccountError as exc:
        raise _account_problem(exc) from None
    return _json_response({"user": _user_json(target), "forgotten": count})


# -- the contract's audit log -------------------------------------------------------------------


def _event_json(event: AuditEvent, names: dict[str, str]) -> dict[str, Any]:
    return {"id": event.id, "at": event.at, "at_jst": audit_log.jst(event.at),
            "actor": event.actor, "actor_email": names.get(event.actor),
            "action": event.action, "target": event.target,
            "target_email": names.get(event.target), "ip": event.ip or "",
            "details": event.details or {}}


@bp.get("/audit")
def audit_events() -> Response:
    """The caller's contract's audit log, newest first, filtered as on the console."""
    errors: dict[str, str] = {}
    page = _int_arg("page", 1, 1, 1_000_000, errors)
    per_page = _int_arg("per_page", audit_log.PAGE_SIZE, 1, MAX_PER_PAGE, errors)
    args = request.args
    action, user = _text_arg("action", 80, errors), _text_arg("user", 200, errors)
    for name in ("from", "to"):
        value = args.get(name, "").strip()
        if value and not _DATE.match(value):
            errors[name] = "a day as YYYY-MM-DD (Japan time)"
    filters = audit_log.Filters(action=action, user=user,
                                since=args.get("from", ""), until=args.get("to", ""))
    found = None
    if not errors:
        try:
            found = audit_log.events_of(_caller().contract_id, filters, page,
                                        per_page=per_page)
        except audit_log.FilterError as exc:
            errors["from" if str(exc).endswith("since") else "to"] = (
                "a day as YYYY-MM-DD (Japan time)")
    if errors or found is None:
        raise Problem(400, "validation_failed", "The query has invalid parameters.",
                      errors=errors)
    # As the user list: a page past the last one is empty, so a client paging on stops.
    events = found.events if found.page == page else []
    return _json_response({"total": found.total, "page": page, "per_page": per_page,
                           "items": [_event_json(e, found.names) for e in events]})


# -- the contract's settings (read-only) --------------------------------------------------------


@bp.get("/contract")
def get_contract() -> Response:
    """The contract's settings as the settings menu shows them. Read-only: changing them
    is the owner's, in the settings menu (SPEC §2), never an admin's nor a client's."""
    contract = _contract()
    # Only the AD type leaves the server: the rest of ``ad_settings`` holds the sealed
    # bind password, which is never shown back, not even to the owner.
    ad_type = (contract.ad_settings or {}).get("type")
    return _json_response({
        "id": contract.id, "name": contract.name, "plan": contract.plan,
        "state": contracts.state(contract), "trial_ends_at": contract.trial_ends_at,
        "access_route": contract.access_route,
        "two_step": {"enabled": contract.two_step_enabled,
                     "in_force": settings_rules.two_step_in_force(contract)},
        "two_step_keep_on_reset": contract.two_step_keep_on_reset,
        "connection_id": contract.connection_id,
        "ad_type": ad_type if isinstance(ad_type, str) else None,
    })


# -- line IDs ---------------------------------------------------------------------------------


def _contract() -> Contract:
    contract = db.session.get(Contract, _caller().contract_id)
    if contract is None:
        raise Problem(403, "forbidden", "No contract.")
    return contract


@bp.get("/lines")
def list_lines() -> Response:
    contract = _contract()
    return _json_response({"access_route": contract.access_route,
                           "items": [_line_json(r) for r in lines.listing(contract)]})


@bp.post("/lines")
def add_line() -> Response:
    body = _body("line_id", required=("line_id",))
    try:
        row = lines.register(_contract(), body["line_id"], actor=_caller())
        db.session.commit()
    except LineIdError as exc:
        raise _account_problem(exc) from None
    except IntegrityError:
        # The same ID registered by someone else in the same moment (unique constraint).
        raise Problem(409, "line_id_taken", t("line_id_taken")) from None
    return _json_response(_line_json(row), 201)


@bp.delete("/lines/<line_id>")
def remove_line(line_id: str) -> Response:
    """Remove a line ID. Under ``line-only`` the last one goes only with ``?confirm=true``:
    without a registered line nobody signs in but the owner's break-glass (SPEC §7)."""
    try:
        wanted = lines.normalise(line_id)
    except LineIdError:
        raise Problem(404, "not_found", "No such line in this contract.") from None
    contract_id = _caller().contract_id
    # As the console: the contract's row lock serialises removals of the last lines.
    db.session.execute(update(Contract).where(Contract.id == contract_id)
                       .values(access_route=Contract.access_route)
                       .execution_options(synchronize_session=False))
    contract = db.session.get(Contract, contract_id, populate_existing=True)
    row = lines.find(contract.id, wanted) if contract is not None else None
    if row is None:
        raise Problem(404, "not_found", "No such line in this contract.")
    count = db.session.scalar(select(func.count()).select_from(ContractLine)
                              .where(ContractLine.contract_id == contract.id))
    confirmed = request.args.get("confirm") == "true"
    if contract.access_route == "line-only" and count == 1 and not confirmed:
        raise Problem(409, "last_line_of_line_only",
                      "This is the last line of a line-only contract: only the owner's "
                      "break-glass sign-in would remain. Repeat with ?confirm=true.")
    lines.remove(contract, row.line_id, actor=_caller())
    db.session.commit()
    return Response(status=204)


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(rest: str) -> Response:
    raise Problem(404, "not_found", "No such endpoint.")
