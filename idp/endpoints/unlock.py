"""Account unlock by the link mailed at lockout (SPEC §4.2)."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("unlock", __name__)


@bp.route("/account/unlock", methods=["GET", "POST"])
def unlock():
    abort(404)  # placeholder until this surface is built
