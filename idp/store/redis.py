"""Redis-backed ephemeral store; expiry is Redis's own, ``take`` is GETDEL."""

from __future__ import annotations

import json

import redis

from . import JSON

_PREFIX = "idp:"


class RedisStore:
    def __init__(self, client: redis.Redis, *, clock, prefix: str = _PREFIX) -> None:
        self.r = client
        self.clock = clock  # unused: Redis keeps time; kept for interface symmetry
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, *, clock, prefix: str = _PREFIX) -> RedisStore:
        return cls(redis.Redis.from_url(url, socket_timeout=2, health_check_interval=30),
                   clock=clock, prefix=prefix)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def put(self, key: str, value: JSON, ttl: int) -> None:
        self.r.set(self._k(key), json.dumps(value, separators=(",", ":")), ex=max(1, int(ttl)))

    def add(self, key: str, value: JSON, ttl: int) -> bool:
        data = json.dumps(value, separators=(",", ":"))
        return bool(self.r.set(self._k(key), data, ex=max(1, int(ttl)), nx=True))

    def get(self, key: str) -> JSON | None:
        raw = self.r.get(self._k(key))
        return json.loads(raw) if raw is not None else None

    def take(self, key: str) -> JSON | None:
        raw = self.r.getdel(self._k(key))
        return json.loads(raw) if raw is not None else None

    def delete(self, *keys: str) -> None:
        if keys:
            self.r.delete(*(self._k(k) for k in keys))

    def incr(self, key: str, ttl: int) -> int:
        pipe = self.r.pipeline(transaction=True)
        pipe.incr(self._k(key))
        pipe.expire(self._k(key), max(1, int(ttl)), nx=True)
        value, _ = pipe.execute()
        return int(value)

    def ping(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.RedisError:
            return False
