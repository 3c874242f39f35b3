"""Client registration rules shared by the operator CLI and dynamic registration."""

from __future__ import annotations

import secrets
from typing import Any

from .clock import now
from .db import db
from .models import Client
from .security import random_token, sha256_hex

SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def new_client_id() -> str:
    return "cl_" + secrets.token_urlsafe(16)


def create_client(meta: dict[str, Any], *, client_id: str | None = None,
                  first_party: bool = False) -> tuple[Client, str | None]:
    """Store a client; returns it and its secret (shown once, only its SHA-256 is kept)."""
    meta = dict(meta)
    meta.setdefault("token_endpoint_auth_method", "client_secret_basic")
    meta.setdefault("grant_types", ["authorization_code"])
    meta.setdefault("response_types", ["code"])
    secret = None
    if meta["token_endpoint_auth_method"] in SECRET_AUTH_METHODS:
        secret = random_token(32)
    client = Client(
        client_id=client_id or new_client_id(),
        secret_hash=sha256_hex(secret) if secret else None,
        meta=meta,
        first_party=first_party,
        issued_at=now(),
    )
    db.session.add(client)
    db.session.commit()
    return client, secret


def create_initial_access_token(*, note: str = "", ttl: int = 7 * 86400, uses: int = 1) -> str:
    """An initial access token for RFC 7591 registration; returned once, stored hashed."""
    from .models import InitialAccessToken

    token = random_token(32)
    t = now()
    db.session.add(InitialAccessToken(token_hash=sha256_hex(token), note=note, created_at=t,
                                      expires_at=t + ttl, uses_left=uses))
    db.session.commit()
    return token
