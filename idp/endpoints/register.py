"""Dynamic client registration (RFC 7591, RFC 7592, OIDC Registration 1.0)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("register", __name__)
