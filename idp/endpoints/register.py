"""Dynamic client registration (RFC 7591 §3, OIDC Registration 1.0 §3) and client
configuration (RFC 7592 §2, §3)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from .. import clients
from ..models import Client
from ..web import csrf, settings

bp = Blueprint("register", __name__)

#: Fields of RFC 7592 §3 the server sets; an update must not send them (RFC 7592 §2.2).
_SERVER_SET = ("registration_access_token", "registration_client_uri",
               "client_secret_expires_at", "client_id_issued_at")


def _json(status: int, body: Any | None = None) -> Response:
    payload = "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    response = Response(payload, status=status, mimetype="application/json")
    # Responses carry secrets and tokens (RFC 7591 §3.2.1).
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _invalid_token(description: str) -> Response:
    """RFC 6750 §3.1; the same answer for every reason, so nothing can be probed."""
    response = _json(401, {"error": "invalid_token", "error_description": description})
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


@bp.errorhandler(clients.RegistrationError)
def _registration_error(exc: clients.RegistrationError) -> Response:
    return _json(exc.status, {"error": exc.error, "error_description": exc.description})


def _bearer() -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750 §2.1), if any."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise clients.InvalidRequest("the body must be a JSON object (application/json)")
    return body


def _policy() -> clients.Policy:
    cfg = settings()
    return clients.Policy(production=not cfg.dev, http_timeout=cfg.http_timeout)


def _client_information(client: Client, *, secret: str | None,
                        registration_token: str) -> dict[str, Any]:
    """The client information response (RFC 7591 §3.2.1, RFC 7592 §3)."""
    body: dict[str, Any] = {"client_id": client.client_id,
                            "client_id_issued_at": client.issued_at}
    if secret is not None:
        body["client_secret"] = secret
    if client.secret_hash is not None:
        body["client_secret_expires_at"] = client.secret_expires_at
    # Only its hash is stored, so a read answers with the token that was presented.
    body["registration_access_token"] = registration_token
    body["registration_client_uri"] = f"{settings().issuer}/register/{client.client_id}"
    body.update(clients.public_metadata(client.meta))
    return body


@bp.post("/register")
@csrf.exempt  # a protocol request from a client, authenticated by a bearer token
def register() -> Response:
    iat = None
    if settings().registration_requires_iat:
        iat = _bearer()
        # Checked before the body so that strangers learn nothing about our rules.
        if iat is None or not clients.initial_access_token_usable(iat):
            return _invalid_token("a valid initial access token is required")
    meta = clients.validate_metadata(_body(), _policy())
    try:
        client, secret, token = clients.register_client(
            meta, initial_access_token=iat, ip=request.remote_addr or ""
        )
    except clients.InitialAccessTokenSpent:
        return _invalid_token("the initial access token has been used up")
    return _json(201, _client_information(client, secret=secret, registration_token=token))


def _managed_client(client_id: str) -> tuple[Client, str] | Response:
    token = _bearer()
    client = clients.registered_client(client_id, token) if token else None
    if client is None:
        # Unknown client and wrong token answer alike (RFC 7592 §2.1), so ids cannot be
        # probed with any token.
        return _invalid_token("the registration access token is not valid for this client")
    return client, token


def _check_update_request(body: dict[str, Any], client: Client) -> None:
    """The rules RFC 7592 §2.2 sets for an update beyond those of a registration."""
    sent = [name for name in _SERVER_SET if name in body]
    if sent:
        raise clients.InvalidRequest(f"{sent[0]} must not be sent in an update")
    if body.get("client_id") != client.client_id:
        raise clients.InvalidRequest("client_id must be sent and match the client")
    if "client_secret" in body and not (
        isinstance(body["client_secret"], str) and client.check_client_secret(body["client_secret"])
    ):
        raise clients.InvalidRequest("client_secret does not match the current secret")


@bp.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
@csrf.exempt
def configure(client_id: str) -> Response:
    found = _managed_client(client_id)
    if isinstance(found, Response):
        return found
    client, token = found
    if request.method == "GET":
        return _json(200, _client_information(client, secret=None, registration_token=token))
    if request.method == "DELETE":
        clients.delete_client(client, actor=f"client:{client.client_id}",
                              ip=request.remote_addr or "")
        return _json(204)
    body = _body()
    _check_update_request(body, client)
    # Replaced as a whole: what the update omits is deleted or back to its default.
    meta = clients.validate_metadata(body, _policy())
    secret = clients.update_client(client, meta, ip=request.remote_addr or "")
    return _json(200, _client_information(client, secret=secret, registration_token=token))
