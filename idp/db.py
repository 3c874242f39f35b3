"""The SQLAlchemy extension and declarative base shared by every model."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# expire_on_commit=False: sessions are per request, and re-reading every row touched
# before a commit (the user, the refresh token) cost a round trip each on the token path.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


def savepoint() -> AbstractContextManager[Any]:
    """``db.session.begin_nested()`` that stays inside the request's transaction on SQLite.

    pysqlite opens its transaction lazily, before the first INSERT/UPDATE/DELETE only, so
    a SAVEPOINT issued first would become the outermost transaction and its RELEASE would
    COMMIT at once, whatever the caller then does: BEGIN first. (SQLAlchemy's recipe of
    turning the lazy BEGIN off for the whole engine makes every read a transaction, and
    with WAL a read transaction that later writes after another connection's commit fails
    with "database is locked" at once; so only savepoints take the explicit BEGIN.)
    """
    conn = db.session.connection()
    if conn.dialect.name == "sqlite" and not conn.connection.driver_connection.in_transaction:
        conn.exec_driver_sql("BEGIN")
    return db.session.begin_nested()
