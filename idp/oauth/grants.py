"""Authlib grant classes and client authentication, the only place that subclasses them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .. import contracts
from ..clock import now
from ..db import db
from ..keys import ALGS
from ..models import Client, User
from ..security import sha256_hex
from . import tokens
from .idtoken import build_id_token

#: The scope of the contract admin API (``/admin/api/v1``), client_credentials only.
ADMIN_SCOPE = "admin"
#: The client metadata naming the one contract an admin client acts for.
ADMIN_CONTRACT_KEY = "contract_id"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
_CODE = "code:"
_CODE_USED = "code-used:"


@dataclass
class AuthorizationCode:
    """A code's record, taken from the store; what Authlib's code grant reads."""

    digest: str
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    grant: dict[str, Any]
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    expires_at: int = 0

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


def issue_code(code: str, record: dict[str, Any]) -> None:
    cfg = current_app.extensions["idp.settings"]
    # The record carries its own expiry: the store's TTL (Redis keeps its own time) is only
    # the cleanup, the app clock decides (RFC 6749 §4.1.2: codes MUST expire shortly).
    record = {**record, "expires_at": now() + cfg.code_ttl}
    tokens.store().put(_CODE + sha256_hex(code), record, cfg.code_ttl)


def active_user(user_id: str | None, epoch: int | None = None) -> User | None:
    """The user while they may use tokens: active, their contract usable (not cancelled,
    not an ended trial) and, given the ``epoch`` a token was issued under, not revoked
    since (``contracts.revoke_user_access``)."""
    user = db.session.get(User, user_id) if user_id else None
    return user if contracts.user_usable(user, epoch=epoch) else None


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        store = tokens.store()
        digest = sha256_hex(code)
        record = store.take(_CODE + digest)
        if record is None:
            # A replayed code: revoke what its first exchange issued (RFC 6749 §4.1.2).
            used = store.take(_CODE_USED + digest)
            if used:
                tokens.revoke_access_tokens(used.get("at"))
                if used.get("family"):
                    tokens.revoke_family(used["family"])
                    db.session.commit()
            return None
        # Remember the exchange before issuing, so a racing replay still finds it.
        store.put(_CODE_USED + digest, {}, current_app.extensions["idp.settings"].access_token_ttl)
        if record["client_id"] != client.client_id or record.get("expires_at", 0) <= now():
            return None
        return AuthorizationCode(digest=digest, **record)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Already gone: ``query_authorization_code`` took it atomically."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        return active_user(authorization_code.user_id, authorization_code.grant.get("epoch"))

    def save_authorization_code(self, code, request):  # pragma: no cover - not used
        raise NotImplementedError("codes are issued by idp.flow, not by Authlib")


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str):
        return tokens.claim_refresh_token(refresh_token)

    def authenticate_user(self, refresh_token) -> User | None:
        user = active_user(refresh_token.user_id, (refresh_token.grant or {}).get("epoch"))
        if user is None:
            # Authlib would answer invalid_request; the grant is what is no longer valid
            # (RFC 6749 §5.2), as for a code whose user is gone or cut off.
            raise InvalidGrantError("the user of this refresh token may no longer use it")
        return user

    def revoke_old_credential(self, refresh_token) -> None:
        """Marked used by ``claim_refresh_token`` in the same transaction as the new one."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_requested_scope(self) -> None:
        scope = self.request.payload.scope
        if not scope:
            return
        requested = set(scope.split())
        # No user is involved, so OpenID scopes make no sense here.
        if requested & {"openid", "offline_access"}:
            raise InvalidScopeError("openid and offline_access need a user")
        if not requested <= set(self.request.client.scope.split()):
            raise InvalidScopeError()
        # The admin API's scope acts for one contract: only a client an operator made
        # for that contract (``idp client create --admin-contract``) may hold it.
        if ADMIN_SCOPE in requested and not self.request.client.meta.get(ADMIN_CONTRACT_KEY):
            raise InvalidScopeError("admin needs an admin client of a contract")


class S256Only(CodeChallenge):
    """PKCE with S256 only: ``plain`` offers nothing against a leaked authorization request."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]


class IDTokenExtension:
    """Adds ``id_token`` to code and refresh responses for ``openid`` scope (OIDC Core §12.2)."""

    def __call__(self, grant) -> None:
        grant.register_hook("after_create_token_response", self.add_id_token)

    @staticmethod
    def add_id_token(grant, response) -> None:
        _, token, _ = response
        request = grant.request
        if "openid" not in (token.get("scope") or "").split() or request.user is None:
            return
        source = request.authorization_code or request.refresh_token
        token["id_token"] = build_id_token(
            client=request.client,
            user=request.user,
            grant=source.grant,
            access_token=token.get("access_token"),
            # A refreshed ID token carries no nonce (OIDC Core §12.2).
            include_nonce=request.authorization_code is not None,
        )


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2) with single-use ``jti``."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self) -> list[str]:
        issuer = current_app.extensions["idp.settings"].issuer
        return [issuer, issuer + "/token", issuer + "/revoke", issuer + "/introspect"]

    def process_assertion_claims(self, assertion, resolve_key):
        # Authlib decodes with joserfc's default list (HS256, RS256, ES256): that would refuse
        # EdDSA, which discovery advertises, and accept HS256 with a key from the client's
        # JWKS. Only the advertised asymmetric algorithms are accepted.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ALGS))
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        ttl = max(60, int(claims.get("exp", 0)) - now() + self.leeway)
        return tokens.store().add(f"jti:{claims['sub']}:{sha256_hex(str(jti))}", {}, ttl)

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if client.meta.get("jwks"):
            return KeySet.import_key_set(client.meta["jwks"])
        uri = client.meta.get("jwks_uri")
        if not uri:
            raise InvalidClientError(description="client has no registered keys")
        cache_key = "jwks-uri:" + sha256_hex(uri)
        cached = tokens.store().get(cache_key)
        if cached is None:
            from ..clients import InvalidClientMetadata, Policy, fetch_json

            cfg = current_app.extensions["idp.settings"]
            try:
                # Same guard as registration: no redirects, size cap, no internal addresses.
                cached = fetch_json(uri, Policy(production=not cfg.dev,
                                                http_timeout=cfg.http_timeout))
            except InvalidClientMetadata as exc:
                raise InvalidClientError(description="client jwks_uri unreachable") from exc
            tokens.store().put(cache_key, cached, 300)
        return KeySet.import_key_set(cached)
