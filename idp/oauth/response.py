"""Authorization responses to the client: query redirect or form_post, always with ``iss``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Response, current_app, redirect, render_template


def to_client(req: Any, params: dict[str, Any]) -> Response:
    """Send ``params`` to ``req.redirect_uri`` adding ``state`` and ``iss`` (RFC 9207)."""
    params = {k: v for k, v in params.items() if v is not None}
    if req.state is not None:
        params["state"] = req.state
    params["iss"] = current_app.extensions["idp.settings"].issuer
    if req.response_mode == "form_post":
        return Response(
            render_template("form_post.html", action=req.redirect_uri, params=params),
            headers={"Cache-Control": "no-store"},
        )
    parts = urlsplit(req.redirect_uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    response = redirect(urlunsplit(parts._replace(query=query)), code=302)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_to_client(req: Any, error: str, description: str = "") -> Response:
    return to_client(req, {"error": error, "error_description": description or None})
