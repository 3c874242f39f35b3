"""Refresh tokens: durable, hashed, grouped in rotation families."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db


class RefreshToken(db.Model):
    """One refresh token; rotation makes a chain of them sharing ``family_id``.

    Only the SHA-256 of the token is stored. A token presented after it was rotated
    (``used_at`` set) is a replay: the whole family is revoked (RFC 9700 §4.14.2).
    """

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(120), index=True)
    user_id: Mapped[str] = mapped_column(String(36), index=True)
    scope: Mapped[str] = mapped_column(Text)
    #: Authentication context copied into refreshed ID tokens (auth_time, acr, amr, sid, ...).
    grant: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    issued_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer)
    used_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revoked_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Digest of the access token issued alongside, revoked with the family.
    access_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    token_type_hint = "refresh_token"

    # What Authlib's revocation and introspection endpoints ask of a token.
    def check_client(self, client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_at - self.issued_at

    def is_expired(self) -> bool:
        from ..clock import now

        return self.expires_at <= now()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None or self.used_at is not None
