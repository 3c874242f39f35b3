"""Alembic environment: migrates ``idp.db.db.metadata`` on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from idp import models  # noqa: F401  (importing the package registers every table)
from idp.db import db
from idp.migrate import CONFIGURE_OPTIONS

config = context.config
target_metadata = db.metadata


def _database_url() -> str:
    # idp.migrate passes the URL as an attribute rather than through the ini-style main
    # options, whose interpolation would mangle a '%' in a URL-encoded password.
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: run migrations through idp.migrate or `idp db`")
    return url


def run_migrations_offline() -> None:
    """Emit SQL to stdout (``--sql``) instead of touching a database."""
    context.configure(
        url=_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **CONFIGURE_OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      **CONFIGURE_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # NullPool: a migration is one short job; nothing should stay connected afterwards.
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
