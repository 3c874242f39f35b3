"""Bring a database to the newest schema with the Alembic migrations shipped in idp/migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Options for ``context.configure`` in idp/migrations/env.py, shared with the schema test so
#: it compares exactly as autogenerate does.
CONFIGURE_OPTIONS: dict[str, Any] = {
    # SQLite cannot ALTER most things in place; batch mode copies the table instead, and is
    # a no-op wrapper on PostgreSQL, so one migration script serves both.
    "render_as_batch": True,
    "compare_type": True,
}


class MigrateError(Exception):
    """A database the migrations cannot safely act on (message says what to do)."""


def alembic_config(database_url: str) -> Config:
    """Alembic configured in code, so the package needs no alembic.ini beside it."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # An attribute, not a main option: ConfigParser interpolation would choke on the '%'
    # of a URL-encoded password. idp/migrations/env.py reads it from here.
    cfg.attributes["database_url"] = database_url
    return cfg


def head_revision() -> str:
    """The newest revision in this code base."""
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None, "idp/migrations/versions holds no revision"
    return head


def current_revision(database_url: str) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _refuse_unversioned(database_url: str) -> None:
    # A database whose tables were made without Alembic (create_all) has no version row;
    # upgrading it would fail halfway on "table already exists". Say so plainly instead.
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            version = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    if version is None and tables - {"alembic_version"}:
        raise MigrateError(
            "the database has tables but no migration history (alembic_version); it was "
            "not created by `idp db upgrade`. Point IDP_DATABASE_URL at an empty database, "
            "or move the old one aside."
        )


def upgrade(database_url: str, revision: str = "head") -> None:
    """``alembic upgrade <revision>`` against ``database_url`` (default: the newest schema)."""
    _refuse_unversioned(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """``alembic downgrade <revision>``; ``"base"`` removes every table the migrations made."""
    command.downgrade(alembic_config(database_url), revision)


def revision(database_url: str, message: str) -> str:
    """Autogenerate a new revision from the models against a database at head (developers).

    Returns the path of the new script, which must be reviewed by hand before it ships.
    """
    script = command.revision(alembic_config(database_url), message=message, autogenerate=True)
    if isinstance(script, list):  # one per branch head; this project keeps one head
        script = script[0]
    assert script is not None
    return str(script.path)
