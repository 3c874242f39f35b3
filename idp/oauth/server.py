"""Authlib's authorization server bound to our models and stores (RFC 6749 §3.2, §5)."""

from __future__ import annotations

import json
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Response, current_app

from .. import contracts
from ..clock import now
from ..db import db
from ..models import Client, RefreshToken, User
from ..security import random_token, sha256_hex
from . import tokens
from .claims import subject
from .client_cache import client_cache
from .grants import AUTH_METHODS
from .idtoken import pairwise_secret

_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


def _settings():
    return current_app.extensions["idp.settings"]


class Server(AuthorizationServer):
    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or len(client_id) > 120:
            return None
        return client_cache().get(client_id)

    def generate_token(
        self, grant_type: str, client: Client, user: User | None = None,
        scope: str | None = None, expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token: dict[str, Any] = {
            "access_token": random_token(),
            "token_type": "Bearer",
            "expires_in": expires_in or _settings().access_token_ttl,
        }
        if scope:
            token["scope"] = scope
        # A refresh token only where offline access was granted (OIDC Core §11). A refresh
        # request may narrow the access token's scope (even below offline_access), but the
        # refresh token it presented had offline access, so rotation always issues the next.
        offline = grant_type == "refresh_token" or "offline_access" in (scope or "").split()
        if include_refresh_token and user is not None and offline:
            token["refresh_token"] = random_token()
        return token

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        cfg = _settings()
        client: Client = request.client
        user: User | None = request.user
        source = request.authorization_code or request.refresh_token
        grant = dict(source.grant) if source is not None else {}
        family = getattr(request.refresh_token, "family_id", None)
        issued = now()
        at = tokens.AccessToken(
            digest="",
            client_id=client.client_id,
            user_id=user.id if user else None,
            scope=token.get("scope", ""),
            iat=issued,
            exp=issued + token["expires_in"],
            sid=grant.get("sid"),
            userinfo_claims=(grant.get("claims") or {}).get("userinfo") or {},
            epoch=user.session_epoch if user is not None else None,
        )
        refresh = token.get("refresh_token")
        if refresh:
            family = family or random_token(16)
            at.family = family
        at.digest = sha256_hex(token["access_token"])
        if refresh and user is not None:
            # RFC 6749 §6: a rotated refresh token keeps exactly the scope of the one it
            # replaces, whatever narrower scope the access token was asked for.
            rt_scope = request.refresh_token.scope if request.refresh_token else at.scope
            tokens.save_refresh_token(
                refresh, client_id=client.client_id, user_id=user.id, scope=rt_scope,
                grant=grant, family_id=family, access_token_digest=at.digest,
                ttl=cfg.refresh_token_ttl,
            )
        # Commits the new refresh token together with the old one's used_at. The store is
        # written only after: on SQLite it is another connection to the same file and would
        # wait for the write lock this session holds since claim_refresh_token's UPDATE.
        db.session.commit()
        tokens.save_access_token(at)
        if request.authorization_code is not None:
            tokens.store().put(
                "code-used:" + request.authorization_code.digest,
                {"at": at.digest, "family": family},
                cfg.access_token_ttl,
            )

    def handle_response(self, status_code: int, payload: Any, headers) -> Response:
        if isinstance(payload, dict):
            payload = json.dumps(payload, separators=(",", ":"))
        return Response(payload, status=status_code, headers=headers)

    def handle_error_response(self, request, error) -> Response:
        db.session.rollback()
        status, body, headers = error(self.get_error_uri(request, error))
        headers = [h for h in headers if h[0].lower() not in ("cache-control", "pragma")]
        if error.error == "invalid_client":
            # RFC 6749 §5.2: 401 with a challenge for the scheme the client may use; Basic
            # requires a realm (RFC 7617 §2), which Authlib's own challenge lacks.
            status = 401
            headers = [h for h in headers if h[0].lower() != "www-authenticate"]
            realm = _settings().issuer
            headers.append(("WWW-Authenticate", f'Basic realm="{realm}", error="invalid_client"'))
        elif status == 401:
            status = 400
        return self.handle_response(status, body, headers + _NO_STORE)


def _check_token_param(request) -> None:
    """``token`` is required; an unknown ``token_type_hint`` is ignored, not an error
    (RFC 7009 §2.2; Authlib answers unsupported_token_type)."""
    if not request.form.get("token"):
        raise InvalidRequestError("token is missing")


def _query_token(token_string: str, hint: str | None):
    """Find an access or refresh token whatever the hint says (RFC 7009 §2.1)."""
    order = (
        (tokens.find_refresh_token, tokens.find_access_token)
        if hint == "refresh_token"
        else (tokens.find_access_token, tokens.find_refresh_token)
    )
    for find in order:
        found = find(token_string)
        if found is not None:
            # A token outlives nothing: once its client is deleted it is no longer active.
            if client_cache().get(found.client_id) is None:
                return None
            return found
    return None


class Revocation(RevocationEndpoint):
    """RFC 7009; revoking a refresh token also revokes its family and their access tokens."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def check_params(self, request, client) -> None:
        _check_token_param(request)

    def query_token(self, token_string, token_type_hint):
        return _query_token(token_string, token_type_hint)

    def revoke_token(self, token, request) -> None:
        if isinstance(token, RefreshToken):
            tokens.revoke_family(token.family_id)
            db.session.commit()
        else:
            tokens.revoke_access_tokens(token.digest)

    def create_endpoint_response(self, request):
        status, body, headers = super().create_endpoint_response(request)
        return status, body, list(headers) + _NO_STORE


def _user_may_use(token: tokens.AccessToken | RefreshToken) -> bool:
    """A disabled or cut-off user's tokens (cancelled contract, ended trial, revoked epoch)
    are not active, though they have not expired."""
    epoch = token.epoch if isinstance(token, tokens.AccessToken) else (
        (token.grant or {}).get("epoch"))
    return contracts.user_usable(db.session.get(User, token.user_id), epoch=epoch)


class Introspection(IntrospectionEndpoint):
    """RFC 7662 for authenticated clients: their own tokens, or any if registered as a
    resource server (``introspection: true`` in the client's metadata)."""

    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def check_params(self, request, client) -> None:
        _check_token_param(request)

    def query_token(self, token_string, token_type_hint):
        token = _query_token(token_string, token_type_hint)
        if token is not None and token.user_id is not None and not _user_may_use(token):
            return None  # answered {"active": false} (RFC 7662 §2.2)
        return token

    def check_permission(self, token, client: Client, request) -> bool:
        return token.client_id == client.client_id or bool(client.meta.get("introspection"))

    def introspect_token(self, token) -> dict[str, Any]:
        if isinstance(token, RefreshToken):
            user_id, iat, exp = token.user_id, token.issued_at, token.expires_at
            kind = "refresh_token"
        else:
            user_id, iat, exp, kind = token.user_id, token.iat, token.exp, "access_token"
        body: dict[str, Any] = {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "token_type": "Bearer" if kind == "access_token" else "refresh_token",
            "exp": exp,
            "iat": iat,
            "iss": _settings().issuer,
        }
        if user_id:
            owner = client_cache().get(token.client_id)
            body["sub"] = subject(user_id, owner, pairwise_secret()) if owner else user_id
            body["aud"] = token.client_id
        return body

    def create_endpoint_response(self, request):
        status, body, headers = super().create_endpoint_response(request)
        return status, body, list(headers) + _NO_STORE
