"""Contract console for owners and admins: users, invitations, mails (SPEC §10)."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("admin", __name__)


@bp.route("/admin/users", methods=["GET", "POST"])
def users():
    abort(404)  # placeholder until this surface is built
