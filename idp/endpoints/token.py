"""Token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §6; OIDC Core §3.1.3)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..web import csrf

bp = Blueprint("token", __name__)


@bp.post("/token")
@csrf.exempt
def token() -> Response:
    return current_app.extensions["idp.oauth"].create_token_response()
