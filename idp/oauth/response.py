"""Authorization responses to the client: query redirect or form_post, always with ``iss``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Response, current_app, redirect, render_template

# Our pages run no script (idp/web.py); this one must run its auto-submit script, or the
# browser shows a blank page and the response never reaches the client.
_FORM_POST_CSP = (
    "default-src 'none'; script-src 'self'; form-action *; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def auto_post(action: str, params: dict[str, Any]) -> Response:
    """A page that POSTs ``params`` to ``action`` by itself (form_post, SAML POST)."""
    return Response(render_template("form_post.html", action=action, params=params),
                    headers={"Cache-Control": "no-store",
                             "Content-Security-Policy": _FORM_POST_CSP})


def to_client(req: Any, params: dict[str, Any]) -> Response:
    """Send ``params`` to ``req.redirect_uri`` adding ``state`` and ``iss`` (RFC 9207)."""
    params = {k: v for k, v in params.items() if v is not None}
    if req.state is not None:
        params["state"] = req.state
    params["iss"] = current_app.extensions["idp.settings"].issuer
    if req.response_mode == "form_post":
        return auto_post(req.redirect_uri, params)
    parts = urlsplit(req.redirect_uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    response = redirect(urlunsplit(parts._replace(query=query)), code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


# RFC 6749 §4.1.2.1: error_description is printable ASCII without double quote or backslash.
_NOT_DESCRIPTION = re.compile(r'[^\x20-\x21\x23-\x5B\x5D-\x7E]')


def error_to_client(req: Any, error: str, description: str = "") -> Response:
    # Some descriptions quote request values; they must not carry anything else back.
    description = _NOT_DESCRIPTION.sub("", description)[:200]
    return to_client(req, {"error": error, "error_description": description or None})
