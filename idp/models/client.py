"""OAuth clients (relying parties) and initial access tokens for registration."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list
from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db
from ..security import matches_hash

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


class Client(db.Model, ClientMixin):
    """A registered client; its RFC 7591 metadata lives in ``meta``."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    #: SHA-256 hex of the client secret; None for public and private_key_jwt clients.
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    #: SHA-256 of the RFC 7592 registration access token (dynamic clients only).
    registration_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    issued_at: Mapped[int] = mapped_column(Integer)
    secret_expires_at: Mapped[int] = mapped_column(Integer, default=0)

    # -- metadata accessors -------------------------------------------------------------
    @property
    def client_name(self) -> str:
        return self.meta.get("client_name") or self.client_id

    @property
    def redirect_uris(self) -> list[str]:
        return list(self.meta.get("redirect_uris", []))

    @property
    def post_logout_redirect_uris(self) -> list[str]:
        return list(self.meta.get("post_logout_redirect_uris", []))

    @property
    def token_endpoint_auth_method(self) -> str:
        return self.meta.get("token_endpoint_auth_method", "client_secret_basic")

    @property
    def grant_types(self) -> list[str]:
        return list(self.meta.get("grant_types", ["authorization_code"]))

    @property
    def response_types(self) -> list[str]:
        return list(self.meta.get("response_types", ["code"]))

    @property
    def scope(self) -> str:
        return self.meta.get("scope", "openid profile email phone offline_access")

    @property
    def id_token_signed_response_alg(self) -> str:
        return self.meta.get("id_token_signed_response_alg", "RS256")

    @property
    def subject_type(self) -> str:
        return self.meta.get("subject_type", "public")

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    # -- authlib ClientMixin ---------------------------------------------------------------
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC requires redirect_uri in every request, so no default is ever used.
        return None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string match (RFC 9700 §4.1.3, OIDC Core §3.1.2.1).
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_expires_at and self.secret_expires_at < _now():
            return False
        return matches_hash(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def _now() -> int:
    from ..clock import now

    return now()


class InitialAccessToken(db.Model):
    """Bearer token an operator hands a partner so it may register a client (RFC 7591 §3)."""

    __tablename__ = "initial_access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer)
    #: How many more registrations it allows.
    uses_left: Mapped[int] = mapped_column(Integer, default=1)
