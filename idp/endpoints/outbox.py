"""Development outbox: mails the provider would have sent (IDP_ENV=development only)."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("outbox", __name__)


@bp.route("/dev/outbox", methods=["GET", "POST"])
def index():
    abort(404)  # placeholder until this surface is built
