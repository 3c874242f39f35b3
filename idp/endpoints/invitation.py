"""Registration by invitation (利用者登録, SPEC §6)."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("invitation", __name__)


@bp.route("/invitation", methods=["GET", "POST"])
def register():
    abort(404)  # placeholder until this surface is built
