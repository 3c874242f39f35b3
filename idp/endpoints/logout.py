"""RP-Initiated Logout 1.0 (end_session_endpoint), GET and POST."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, redirect, render_template, request

from .. import session as sessions
from ..db import db
from ..models import Client
from ..oauth.claims import subject
from ..oauth.idtoken import pairwise_secret, read_id_token_hint
from ..web import csrf

bp = Blueprint("logout", __name__)

_PASS_ON = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id", "ui_locales")


def _error(description: str) -> Response:
    return Response(render_template("error.html", error="invalid_request",
                                    description=description), status=400)


@bp.route("/logout", methods=["GET", "POST"])
@csrf.exempt  # checked below for the confirmation form only; RPs may POST here (§2)
def logout() -> Response:
    params = request.values
    hint_claims = None
    if params.get("id_token_hint"):
        try:
            hint_claims = read_id_token_hint(params["id_token_hint"])
        except ValueError as exc:
            return _error(str(exc))
    client_id = params.get("client_id")
    if hint_claims is not None:
        aud = hint_claims["aud"] if isinstance(hint_claims["aud"], list) else [hint_claims["aud"]]
        if client_id and client_id not in aud:
            return _error("client_id does not match the id_token_hint audience")
        client_id = client_id or aud[0]
    client = db.session.get(Client, client_id) if client_id else None
    if client_id and client is None:
        return _error("unknown client_id")

    target = params.get("post_logout_redirect_uri")
    # Exact match against the client's registration (RP-Initiated Logout §3).
    if target and (client is None or target not in client.post_logout_redirect_uris):
        return _error("post_logout_redirect_uri is not registered for this client")

    session = sessions.current()
    confirmed = request.method == "POST" and params.get("confirm") == "yes"
    if confirmed:
        csrf.protect()
    hint_matches = (
        session is not None and hint_claims is not None and client is not None and (
            hint_claims.get("sid") == session.sid
            or hint_claims.get("sub") == subject(session.user_id, client, pairwise_secret())
        )
    )
    if session is not None and not (confirmed or hint_matches):
        # Ask first: a bare GET must not sign anyone out (cross-site logout).
        keep = {k: params[k] for k in _PASS_ON if params.get(k)}
        return Response(render_template("logout.html", done=False, params=keep))

    response = _after_logout(target, params.get("state"))
    sessions.end(response)
    return response


def _after_logout(target: str | None, state: str | None) -> Response:
    if not target:
        return Response(render_template("logout.html", done=True, params={}))
    if state:
        parts = urlsplit(target)
        query = parts.query + ("&" if parts.query else "") + urlencode({"state": state})
        target = urlunsplit(parts._replace(query=query))
    return redirect(target, code=302)
