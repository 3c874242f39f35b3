"""Ephemeral store: short-lived state shared by every worker (Redis or SQL, same behaviour)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.engine import Engine

JSON = dict[str, Any]


class Store(Protocol):
    """Key/value with expiry. Values are JSON objects; ``ttl`` is in seconds.

    ``take`` is the single-use primitive: of any number of concurrent callers for one key,
    exactly one gets the value (authorization codes, one-time transactions).
    """

    def put(self, key: str, value: JSON, ttl: int) -> None: ...
    def add(self, key: str, value: JSON, ttl: int) -> bool:
        """Store only if absent; True when this call stored it (replay guards)."""
        ...
    def get(self, key: str) -> JSON | None: ...
    def take(self, key: str) -> JSON | None: ...
    def delete(self, *keys: str) -> None: ...
    def incr(self, key: str, ttl: int) -> int:
        """Increment a counter, creating it with ``ttl``; returns the new value."""
        ...
    def ping(self) -> bool: ...


def open_store(redis_url: str, engine: Engine, clock) -> Store:
    """Redis when a URL is configured, else the SQL table in the durable database."""
    if redis_url:
        from .redis import RedisStore

        return RedisStore.from_url(redis_url, clock=clock)
    from .sql import SQLStore

    return SQLStore(engine, clock=clock)
