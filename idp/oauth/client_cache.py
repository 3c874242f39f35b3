"""A per-worker cache of client records for client authentication on the hot endpoints.

Every token, introspection and revocation request authenticates its client; loading the
row through the ORM each time was a third of a client_credentials request. Entries are
detached copies (never attached to a session, so a commit cannot expire them) that live
``ttl`` seconds. A change made in this worker (registration update or delete) drops the
entry at once; a change made elsewhere (another worker, the CLI) is seen within ``ttl``.
"""

from __future__ import annotations

import copy
import threading
import time

from flask import current_app

from ..db import db
from ..models import Client

DEFAULT_TTL = 5.0


class ClientCache:
    def __init__(self, ttl: float = DEFAULT_TTL) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, Client]] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str) -> Client | None:
        now = time.monotonic()
        hit = self._items.get(client_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = db.session.get(Client, client_id)
        if row is None:
            # Unknown ids are not cached: they would let anyone grow this dict.
            self.invalidate(client_id)
            return None
        snapshot = Client(
            client_id=row.client_id, secret_hash=row.secret_hash, meta=copy.deepcopy(row.meta),
            first_party=row.first_party, registration_token_hash=row.registration_token_hash,
            issued_at=row.issued_at, secret_expires_at=row.secret_expires_at,
        )
        with self._lock:
            self._items[client_id] = (now + self.ttl, snapshot)
        return snapshot

    def invalidate(self, client_id: str) -> None:
        with self._lock:
            self._items.pop(client_id, None)


def client_cache() -> ClientCache:
    return current_app.extensions["idp.client_cache"]
