"""SQL-backed ephemeral store for the embedded default (one table, ``ephemeral``).

Each call runs in its own short transaction on its own connection, so it never joins
(or is rolled back with) the request's ORM transaction. ``take`` is one
``DELETE ... RETURNING``, which both SQLite (3.35+) and PostgreSQL make atomic.

On SQLite this means: never call the store while the request's ORM session holds
uncommitted writes, or the store's connection waits for that session's write lock.

The statements are plain SQL prepared once per dialect and sent with ``exec_driver_sql``:
the store sits on the token endpoint's hot path, and building SQLAlchemy constructs per
call cost more than the database work itself.
"""

from __future__ import annotations

import json
import random
import re

from sqlalchemy.engine import Engine

from . import JSON

_PURGE_CHANCE = 0.01

_SQL = {
    "put": 'INSERT INTO ephemeral ("key", "value", expires_at) VALUES (:k, :v, :e) '
           'ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value", '
           "expires_at = excluded.expires_at",
    "drop_expired": 'DELETE FROM ephemeral WHERE "key" = :k AND expires_at <= :now',
    "add": 'INSERT INTO ephemeral ("key", "value", expires_at) VALUES (:k, :v, :e) '
           'ON CONFLICT ("key") DO NOTHING RETURNING "key"',
    "get": 'SELECT "value" FROM ephemeral WHERE "key" = :k AND expires_at > :now',
    "take": 'DELETE FROM ephemeral WHERE "key" = :k RETURNING "value", expires_at',
    "delete": 'DELETE FROM ephemeral WHERE "key" = :k',
    # Counters are stored as the JSON text of an integer; cast to add atomically.
    "incr": 'UPDATE ephemeral SET "value" = CAST(CAST("value" AS INTEGER) + 1 AS TEXT) '
            'WHERE "key" = :k RETURNING "value"',
    "purge": "DELETE FROM ephemeral WHERE expires_at < :now",
    "ping": "SELECT 1",
}


def _for_dialect(dialect: str) -> dict[str, str]:
    """``:name`` suits sqlite3; psycopg wants ``%(name)s``."""
    if dialect == "sqlite":
        return dict(_SQL)
    return {name: re.sub(r":(\w+)", r"%(\1)s", sql) for name, sql in _SQL.items()}


class SQLStore:
    def __init__(self, engine: Engine, *, clock) -> None:
        self.engine = engine
        self.clock = clock
        self.sql = _for_dialect(engine.dialect.name)

    def _now(self) -> float:
        return self.clock.now()

    def _run(self, conn, name: str, **params):
        return conn.exec_driver_sql(self.sql[name], params)

    def _maybe_purge(self, conn) -> None:
        # Expired rows are invisible to reads; removing them now and then keeps the table small.
        if random.random() < _PURGE_CHANCE:
            self._run(conn, "purge", now=self._now())

    def put(self, key: str, value: JSON, ttl: int) -> None:
        with self.engine.begin() as conn:
            self._run(conn, "put", k=key, v=json.dumps(value), e=self._now() + ttl)
            self._maybe_purge(conn)

    def add(self, key: str, value: JSON, ttl: int) -> bool:
        now = self._now()
        with self.engine.begin() as conn:
            # An expired row with the same key no longer counts as present.
            self._run(conn, "drop_expired", k=key, now=now)
            # RETURNING, not rowcount: an INSERT's rowcount is -1 under psycopg 3.
            row = self._run(conn, "add", k=key, v=json.dumps(value), e=now + ttl).first()
        return row is not None

    def get(self, key: str) -> JSON | None:
        with self.engine.connect() as conn:
            raw = self._run(conn, "get", k=key, now=self._now()).scalar()
        return json.loads(raw) if raw is not None else None

    def take(self, key: str) -> JSON | None:
        with self.engine.begin() as conn:
            row = self._run(conn, "take", k=key).first()
        if row is None or row[1] <= self._now():
            return None
        return json.loads(row[0])

    def delete(self, *keys: str) -> None:
        if keys:
            with self.engine.begin() as conn:
                for key in keys:
                    self._run(conn, "delete", k=key)

    def incr(self, key: str, ttl: int) -> int:
        now = self._now()
        with self.engine.begin() as conn:
            self._run(conn, "drop_expired", k=key, now=now)
            self._run(conn, "add", k=key, v="0", e=now + ttl).first()
            new = self._run(conn, "incr", k=key).scalar_one()
        return int(new)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                self._run(conn, "ping")
            return True
        except Exception:
            return False
