"""SQL-backed ephemeral store for the embedded default (one table, ``ephemeral``).

Each call runs in its own short transaction on its own connection, so it never joins
(or is rolled back with) the request's ORM transaction. ``take`` is one
``DELETE ... RETURNING``, which both SQLite (3.35+) and PostgreSQL make atomic.
"""

from __future__ import annotations

import json
import random

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from ..models.kv import KeyValue
from . import JSON

_T = KeyValue.__table__
_PURGE_CHANCE = 0.01


class SQLStore:
    def __init__(self, engine: Engine, *, clock) -> None:
        self.engine = engine
        self.clock = clock
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def _now(self) -> float:
        return self.clock.now()

    def _maybe_purge(self, conn) -> None:
        # Expired rows are invisible to reads; removing them now and then keeps the table small.
        if random.random() < _PURGE_CHANCE:
            conn.execute(delete(_T).where(_T.c.expires_at < self._now()))

    def put(self, key: str, value: JSON, ttl: int) -> None:
        row = {"key": key, "value": json.dumps(value), "expires_at": self._now() + ttl}
        stmt = self._insert(_T).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_T.c.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)
            self._maybe_purge(conn)

    def add(self, key: str, value: JSON, ttl: int) -> bool:
        now = self._now()
        with self.engine.begin() as conn:
            # An expired row with the same key no longer counts as present.
            conn.execute(delete(_T).where(_T.c.key == key, _T.c.expires_at <= now))
            stmt = (
                self._insert(_T)
                .values(key=key, value=json.dumps(value), expires_at=now + ttl)
                .on_conflict_do_nothing(index_elements=[_T.c.key])
                .returning(_T.c.key)  # rowcount is unreliable for INSERT under psycopg 3
            )
            return conn.execute(stmt).first() is not None

    def get(self, key: str) -> JSON | None:
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(_T.c.value).where(_T.c.key == key, _T.c.expires_at > self._now())
            ).scalar()
        return json.loads(raw) if raw is not None else None

    def take(self, key: str) -> JSON | None:
        with self.engine.begin() as conn:
            raw = conn.execute(
                delete(_T).where(_T.c.key == key).returning(_T.c.value, _T.c.expires_at)
            ).first()
        if raw is None or raw.expires_at <= self._now():
            return None
        return json.loads(raw.value)

    def delete(self, *keys: str) -> None:
        if keys:
            with self.engine.begin() as conn:
                conn.execute(delete(_T).where(_T.c.key.in_(keys)))

    def incr(self, key: str, ttl: int) -> int:
        now = self._now()
        with self.engine.begin() as conn:
            conn.execute(delete(_T).where(_T.c.key == key, _T.c.expires_at <= now))
            stmt = self._insert(_T).values(key=key, value="0", expires_at=now + ttl)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[_T.c.key]))
            # The counter is stored as JSON text of an integer; cast to add atomically.
            new = conn.execute(
                update(_T)
                .where(_T.c.key == key)
                .values(value=text("CAST(CAST(value AS INTEGER) + 1 AS TEXT)"))
                .returning(_T.c.value)
            ).scalar_one()
        return int(new)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
            return True
        except Exception:
            return False
