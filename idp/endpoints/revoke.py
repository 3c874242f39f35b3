"""Token revocation (RFC 7009)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..web import csrf

bp = Blueprint("revoke", __name__)


@bp.post("/revoke")
@csrf.exempt
def revoke() -> Response:
    return current_app.extensions["idp.oauth"].create_endpoint_response("revocation")
