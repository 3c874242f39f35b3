"""Confirming an email change from the link mailed to the new address (SPEC §6)."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("email_change", __name__)


@bp.route("/email/confirm", methods=["GET", "POST"])
def confirm():
    abort(404)  # placeholder until this surface is built
