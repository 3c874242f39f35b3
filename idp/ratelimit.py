"""Fixed-window rate limits kept in the ephemeral store (Redis under scale-out).

A counter's key carries the number of its window, computed from the app clock: every
worker and host counts into the same key, and the window ends when ``idp.clock`` says so
(Redis keeps its own time, so its TTL is only the cleanup). Subjects (addresses, emails)
are hashed into the key, so the store holds no address book.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from .clock import now
from .security import sha256_hex

_PREFIX = "rl:"


@dataclass(frozen=True)
class Limit:
    """``limit`` events per ``window`` seconds in the bucket ``name``."""

    name: str
    limit: int
    window: int

    def _key(self, subject: str, t: int) -> str:
        return f"{_PREFIX}{self.name}:{sha256_hex(subject)}:{t // self.window}"

    def hit(self, subject: str) -> int:
        """Count one event for ``subject``; the count in this window, this one included."""
        # The TTL outlives the window a little: the app clock may run ahead of the store's.
        return _store().incr(self._key(subject, now()), self.window + 60)

    def count(self, subject: str) -> int:
        value = _store().get(self._key(subject, now()))
        return int(value) if isinstance(value, int) else 0

    def exceeded(self, subject: str) -> bool:
        """Has ``subject`` used up this window (without counting an event)?"""
        return self.count(subject) >= self.limit

    def retry_after(self) -> int:
        """Seconds until the current window ends (the ``Retry-After`` value)."""
        return self.window - now() % self.window or self.window

    def first_refusal(self, subject: str) -> bool:
        """True once per window and subject: refusals are audited once, not per request
        (a flood must not turn into as many database writes)."""
        return _store().add(self._key(subject, now()) + ":noted", {}, self.window + 60)


def _store():
    return current_app.extensions["idp.store"]
