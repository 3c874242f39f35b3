"""Access tokens (opaque, in the ephemeral store) and refresh tokens (durable, rotated).

Only SHA-256 digests are kept: a leaked store or database yields no usable token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from ..clock import now
from ..db import db
from ..models import RefreshToken
from ..security import random_token, sha256_hex
from ..store import Store

_AT = "at:"


def store() -> Store:
    return current_app.extensions["idp.store"]


@dataclass
class AccessToken:
    """An access token record; implements what Authlib's endpoints ask of a token."""

    digest: str
    client_id: str
    user_id: str | None
    scope: str
    iat: int
    exp: int
    sid: str | None = None
    family: str | None = None
    #: Claims requested for userinfo through the ``claims`` parameter.
    userinfo_claims: dict[str, Any] = field(default_factory=dict)
    #: The user's ``session_epoch`` at issue: a bump (``contracts.revoke_user_access``)
    #: voids the token although the store cannot list a user's tokens.
    epoch: int | None = None
    token_type_hint = "access_token"

    def record(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id, "user_id": self.user_id, "scope": self.scope,
            "iat": self.iat, "exp": self.exp, "sid": self.sid, "family": self.family,
            "userinfo_claims": self.userinfo_claims, "epoch": self.epoch,
        }

    def check_client(self, client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.exp - self.iat

    def is_expired(self) -> bool:
        return self.exp <= now()

    def is_revoked(self) -> bool:
        return False  # revoked tokens are deleted from the store


def save_access_token(at: AccessToken) -> None:
    """Store a token record under its digest (set by the caller, who needs it first)."""
    store().put(_AT + at.digest, at.record(), max(1, at.exp - now()))


def find_access_token(token: str) -> AccessToken | None:
    digest = sha256_hex(token)
    record = store().get(_AT + digest)
    if record is None:
        return None
    at = AccessToken(digest=digest, **record)
    return None if at.is_expired() else at


def revoke_access_tokens(*digests: str | None) -> None:
    keys = [_AT + d for d in digests if d]
    if keys:
        store().delete(*keys)


# -- refresh tokens ----------------------------------------------------------------------


def find_refresh_token(token: str) -> RefreshToken | None:
    return db.session.get(RefreshToken, sha256_hex(token))


def claim_refresh_token(token: str) -> RefreshToken | None:
    """Mark ``token`` used, atomically; None if it is unknown, expired, revoked or replayed.

    The conditional UPDATE is the single-use guard: of two concurrent refreshes with one
    token exactly one matches ``used_at IS NULL``. The change is committed together with
    the new token (``save_refresh_token``), so a failure in between loses nothing. A replay
    of a rotated token revokes its whole family (RFC 9700 §4.14.2).
    """
    digest = sha256_hex(token)
    t = now()
    # UPDATE ... RETURNING: the winner gets its row in the same round trip.
    won = db.session.scalars(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == digest,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > t,
        )
        .values(used_at=t)
        .returning(RefreshToken)
    ).first()
    if won is not None:
        return won
    row = db.session.get(RefreshToken, digest)
    if row is not None and row.used_at is not None and row.revoked_at is None:
        revoke_family(row.family_id)
        db.session.commit()
    return None


def save_refresh_token(
    token: str, *, client_id: str, user_id: str, scope: str, grant: dict[str, Any],
    family_id: str | None, access_token_digest: str | None, ttl: int,
) -> RefreshToken:
    t = now()
    row = RefreshToken(
        token_hash=sha256_hex(token),
        family_id=family_id or random_token(16),
        client_id=client_id,
        user_id=user_id,
        scope=scope,
        grant=grant,
        issued_at=t,
        expires_at=t + ttl,
        access_token_hash=access_token_digest,
    )
    db.session.add(row)
    return row


def revoke_family(family_id: str) -> None:
    """Revoke every refresh token of a family and the access tokens issued with them.

    Commits the session before touching the store: on SQLite the store writes through
    another connection to the same file, which would wait forever (until the busy timeout)
    for the write lock this session's UPDATE holds.
    """
    digests = db.session.scalars(
        select(RefreshToken.access_token_hash).where(RefreshToken.family_id == family_id)
    ).all()
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    revoke_access_tokens(*digests)
