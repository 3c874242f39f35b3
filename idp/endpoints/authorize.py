"""Authorization endpoint (RFC 6749 §3.1, OIDC Core §3.1.2); GET and POST (§3.1.2.1)."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from .. import flow as flows
from .. import session as sessions
from ..oauth import authorize
from ..oauth.response import error_to_client
from ..web import csrf

bp = Blueprint("authorize", __name__)


def error_page(error: str, description: str, status: int = 400) -> Response:
    return Response(render_template("error.html", error=error, description=description),
                    status=status)


@bp.route("/authorize", methods=["GET", "POST"])
@csrf.exempt  # a protocol request from the client, not a form of ours
def authorize_endpoint() -> Response:
    params = request.args if request.method == "GET" else request.form
    try:
        req = authorize.parse(params)
    except authorize.FatalAuthorizeError as exc:
        # Never redirect to an unverified URI (RFC 6749 §4.1.2.1, RFC 9700 §4.1).
        return error_page(exc.error, exc.description)
    except authorize.AuthorizeError as exc:
        return error_to_client(exc.request, exc.error, exc.description)  # type: ignore[attr-defined]

    response = Response()
    browser = sessions.browser_id(response)
    flow = flows.begin(req, browser)
    result = flows.dispatch(flow)
    # Carry the browser cookie set above onto whatever dispatch returned.
    for value in response.headers.getlist("Set-Cookie"):
        result.headers.add("Set-Cookie", value)
    return result
