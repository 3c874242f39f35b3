"""The email + password sign-in page: inside an OIDC flow, or on its own (``next``).

Every decision about the password is ``idp.signin.password_sign_in``'s; this page only
renders its answer: the sign-in, one uniform refusal, 429 with ``Retry-After``, or (after
the right password only) the page that says the contract has ended.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request, url_for

from .. import flow as flows
from .. import known_devices
from .. import session as sessions
from ..db import db
from ..i18n import t
from ..models import User
from ..signin import SignInResult, password_sign_in

bp = Blueprint("login", __name__)
# Whichever page signed someone in (this one, the settings menu), the device cookie goes out.
bp.after_app_request(known_devices.attach)

_MAX_NEXT = 2000


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a path on this site, else None (no open redirect).

    One leading "/" and nothing a browser could read as another host: no "//", no
    backslash (browsers treat it as "/"), no scheme, no control characters (browsers drop
    tabs and newlines, turning "/\\t/evil" into "//evil").
    """
    if not value or len(value) > _MAX_NEXT or not value.startswith("/"):
        return None
    if value.startswith("//") or "\\" in value:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def buttons(**kwargs: str | None) -> list[tuple[str, str | None]]:
    from .connect import buttons as upstream_buttons  # connect imports this module

    return upstream_buttons(**kwargs)


def _page(flow_id: str | None, *, error: str | None = None, email: str = "",
          next_url: str | None = None, status: int = 200) -> Response:
    body = render_template("login.html", flow_id=flow_id, error=error, email=email,
                           next_url=next_url,
                           upstream=buttons(flow_id=flow_id, next_url=next_url))
    return Response(body, status=status)


def _refused(result: SignInResult, flow_id: str | None, email: str,
             next_url: str | None) -> Response:
    if result.contract_state is not None:
        body = render_template("contract_ended.html", message=t(result.error or "signin_failed"),
                               state=result.contract_state,
                               can_change_plan=result.can_change_plan)
        return Response(body, status=result.status)
    response = _page(flow_id, error=t(result.error or "signin_failed"), email=email,
                     next_url=next_url, status=result.status)
    if result.retry_after is not None:
        response.headers["Retry-After"] = str(result.retry_after)
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    flow_id = request.values.get("flow")
    browser = sessions.browser_id()
    flow = flows.load(flow_id, browser) if flow_id else None
    if flow_id and flow is None:
        return _page(None, error=t("flow_expired"), status=400)
    flows.use_ui_locales(flow)
    # ``next`` serves sign-ins outside an OIDC flow (the admin console sends people here).
    next_url = None if flow else safe_next(request.values.get("next"))
    if request.method == "GET":
        hint = flow.auth.login_hint if flow and flow.request else None
        return _page(flow_id, email=hint or "", next_url=next_url)

    email = request.form.get("email", "")
    password = request.form.get("password", "")
    if not email or not password:
        return _page(flow_id, error=t("missing_fields"), email=email, next_url=next_url,
                     status=400)
    result = password_sign_in(email, password)
    if result.user is None:
        return _refused(result, flow_id, email, next_url)
    if flow is None:
        flow = flows.begin(None, browser, purpose=flows.SESSION, next_url=next_url)
    # The session starts once the step-up chain is satisfied, not here.
    response = flows.primary_done(flow, result.user, method="password", amr=["pwd"])
    sessions.browser_id(response)
    return response


@bp.get("/")
@bp.get("/signed-in")
def done() -> Response:
    session = sessions.current()
    user = db.session.get(User, session.user_id) if session else None
    if user is None:
        return redirect(url_for("login.login"))
    return Response(render_template("signed_in.html", user=user))
