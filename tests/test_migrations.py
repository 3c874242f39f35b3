"""Alembic migrations: a fresh database reaches exactly the models' schema, down and up again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Index, MetaData, String, create_engine, inspect

from idp import models  # noqa: F401  (registers every table)
from idp.db import NAMING, db
from idp.migrate import (
    CONFIGURE_OPTIONS,
    MigrateError,
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from tests.conftest import BACKEND, postgres_database


@contextmanager
def throwaway_database(tmp_path: Path) -> Iterator[str]:
    """URL of an empty database on the test backend, dropped afterwards."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path / f'fresh-{uuid.uuid4().hex[:8]}.sqlite'}"
        return
    with postgres_database("idp_fresh") as url:
        yield url


@pytest.fixture
def fresh_url(tmp_path) -> Iterator[str]:
    with throwaway_database(tmp_path) as url:
        yield url


def schema_diff(url: str, metadata: MetaData = db.metadata) -> list:
    """What autogenerate would put in a new migration for this database."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn, opts=CONFIGURE_OPTIONS),
                                    metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_the_migrations_form_one_line_of_history() -> None:
    # Two heads would mean two people added migrations from the same parent unnoticed.
    heads = ScriptDirectory.from_config(alembic_config("")).get_heads()
    assert heads == [head_revision()]


def test_a_fresh_database_upgraded_to_head_matches_the_models_exactly(fresh_url) -> None:
    upgrade(fresh_url)

    assert current_revision(fresh_url) == head_revision()
    assert set(db.metadata.tables) <= table_names(fresh_url)
    # A model changed without a migration shows up here and fails the suite.
    assert schema_diff(fresh_url) == []


def test_a_model_change_without_a_migration_is_reported(fresh_url) -> None:
    upgrade(fresh_url)
    changed = MetaData(naming_convention=NAMING)
    for table in db.metadata.tables.values():
        table.to_metadata(changed)
    users = changed.tables["users"]
    users.append_column(Column("nickname", String(40), nullable=True))
    Index(None, users.c.nickname)

    diff = schema_diff(fresh_url, changed)

    kinds = {(d[0], d[3].name if d[0] == "add_column" else d[1].name) for d in diff}
    assert kinds == {("add_column", "nickname"), ("add_index", "ix_users_nickname")}


def test_every_constraint_and_index_carries_its_conventional_name(fresh_url) -> None:
    upgrade(fresh_url)
    engine = create_engine(fresh_url)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            for table in db.metadata.tables:
                for index in insp.get_indexes(table):
                    if index.get("duplicates_constraint"):
                        continue  # PostgreSQL's index behind a unique constraint
                    assert index["name"].startswith(f"ix_{table}_"), index
                for fk in insp.get_foreign_keys(table):
                    assert fk["name"].startswith(f"fk_{table}_"), fk
                for uq in insp.get_unique_constraints(table):
                    assert uq["name"].startswith(f"uq_{table}_"), uq
                assert insp.get_pk_constraint(table)["name"] == f"pk_{table}"
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(fresh_url) -> None:
    upgrade(fresh_url)

    downgrade(fresh_url, "base")
    assert current_revision(fresh_url) is None
    assert table_names(fresh_url) <= {"alembic_version"}

    upgrade(fresh_url)
    assert current_revision(fresh_url) == head_revision()
    assert schema_diff(fresh_url) == []


def test_upgrading_twice_changes_nothing(fresh_url) -> None:
    upgrade(fresh_url)
    upgrade(fresh_url)
    assert current_revision(fresh_url) == head_revision()
    assert schema_diff(fresh_url) == []


def test_a_database_built_without_migrations_is_refused_with_advice(fresh_url) -> None:
    engine = create_engine(fresh_url)
    db.metadata.create_all(engine)
    engine.dispose()

    with pytest.raises(MigrateError, match="no migration history"):
        upgrade(fresh_url)
