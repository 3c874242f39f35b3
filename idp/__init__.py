"""OpenID Connect provider: ``create_app(settings)`` wires extensions and blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event

from .clock import Clock
from .db import db
from .keys import KeyRing, KeyStore
from .settings import Settings, load_settings
from .store import open_store


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    if settings is None:
        settings = load_settings(overrides=overrides or None)
    elif overrides:
        settings = settings.replace(**overrides)

    app = Flask(__name__, instance_path=str(settings.keys_dir.parent / "instance"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        # The Flask session cookie only carries CSRF secrets and flash messages; the
        # sign-in session is server-side (idp/session.py).
        SESSION_COOKIE_NAME="idp_ui",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session cookie instead of a clock
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions["idp.settings"] = settings
    if settings.environment == "test":
        from .security import use_fast_password_hashing

        use_fast_password_hashing()
    clock = Clock()
    app.extensions["idp.clock"] = clock

    db.init_app(app)
    if settings.database_url.startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", _sqlite_pragmas)
    with app.app_context():
        app.extensions["idp.store"] = open_store(settings.redis_url, db.engine, clock)
    from .notify import open_mail_sender

    app.extensions["idp.mail"] = open_mail_sender(settings.smtp_url,
                                                  timeout=settings.smtp_timeout)
    from .mfa.chain import open_chain

    # A misconfigured chain stops the provider here, every problem listed.
    app.extensions["idp.chain"] = open_chain(settings)
    from .connectors import open_connectors

    app.extensions["idp.connectors"] = open_connectors(settings)
    app.extensions["idp.keys"] = KeyRing(
        KeyStore(settings.keys_dir, settings.keys_kek or settings.secret_key)
    )

    from .web import init_web

    init_web(app)
    from .oauth import init_oauth

    init_oauth(app)
    from .endpoints import BLUEPRINTS

    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    from .fastpath import install

    install(app)
    return app


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # One connection per thread; WAL lets readers run beside the single writer.
        return {"connect_args": {"check_same_thread": False, "timeout": 30}}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
