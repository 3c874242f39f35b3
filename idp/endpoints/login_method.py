"""Login-method change by the link an admin sent (SPEC §6)."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("login_method", __name__)


@bp.route("/login-method", methods=["GET", "POST"])
def change():
    abort(404)  # placeholder until this surface is built
