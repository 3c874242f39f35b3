"""Token introspection (RFC 7662), for authenticated clients only."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..web import csrf

bp = Blueprint("introspect", __name__)


@bp.post("/introspect")
@csrf.exempt
def introspect() -> Response:
    return current_app.extensions["idp.oauth"].create_endpoint_response("introspection")
