"""The settings menu (認証・契約情報変更メニュー) with its own sign-in (SPEC §2)."""

from __future__ import annotations

from flask import Blueprint, abort

bp = Blueprint("settings_menu", __name__)


@bp.route("/settings/login", methods=["GET", "POST"])
def login():
    abort(404)  # placeholder until this surface is built


@bp.route("/settings", methods=["GET", "POST"])
def menu():
    abort(404)  # placeholder until this surface is built
