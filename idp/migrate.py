"""Bring a database to the newest schema (Alembic migrations in idp/migrations)."""

from __future__ import annotations

from sqlalchemy import create_engine


def upgrade(database_url: str) -> None:
    # Placeholder until the Alembic environment lands: create the tables from the models.
    from . import models  # noqa: F401  (registers every table)
    from .db import db

    engine = create_engine(database_url)
    db.metadata.create_all(engine)
    engine.dispose()
