"""Forgot password and password reset by ticket (SPEC §6)."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("password_reset", __name__)


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot():
    abort(404)  # placeholder until this surface is built


@bp.route("/password/reset", methods=["GET", "POST"])
def reset():
    abort(404)  # placeholder until this surface is built
