"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from ..db import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    checks = {"database": True, "store": current_app.extensions["idp.store"].ping()}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        checks["database"] = False
    ok = all(checks.values())
    response = jsonify(status="ok" if ok else "unavailable", checks=checks)
    response.status_code = 200 if ok else 503
    if not ok:
        response.headers["Retry-After"] = "5"
    return response
