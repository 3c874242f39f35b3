"""Discovery (OIDC Discovery 1.0 §3, RFC 8414) and JWKS (RFC 7517), served from memory.

Both documents are precomputed bytes with an ETag: they are the most requested and least
changing resources, so no per-request JSON encoding or key loading happens here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Blueprint, Response, current_app, request

from ..flow import ACR_LEVELS
from ..keys import ALGS
from ..oauth.claims import CLAIMS_SUPPORTED, SCOPES
from ..oauth.grants import AUTH_METHODS

bp = Blueprint("discovery", __name__)



def metadata(issuer: str) -> dict[str, Any]:
    endpoint_auth = [m for m in AUTH_METHODS if m != "none"]
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks.json",
        "registration_endpoint": issuer + "/register",
        "revocation_endpoint": issuer + "/revoke",
        "introspection_endpoint": issuer + "/introspect",
        "end_session_endpoint": issuer + "/logout",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": list(ALGS),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ALGS),
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ALGS),
        "introspection_endpoint_auth_methods_supported": endpoint_auth,
        "introspection_endpoint_auth_signing_alg_values_supported": list(ALGS),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": list(CLAIMS_SUPPORTED),
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "acr_values_supported": list(ACR_LEVELS),
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "display_values_supported": ["page"],
        "ui_locales_supported": ["ja", "en"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": False,
        "frontchannel_logout_supported": False,
    }


def _document(body: bytes, etag: str, max_age: int) -> Response:
    # Werkzeug keeps If-None-Match tags unquoted; the comparison is weak (RFC 9110 §13.1.2).
    if request.if_none_match.contains_weak(etag.strip('"')):
        response = Response(status=304)
    else:
        response = Response(body, mimetype="application/json")
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.record_once
def _precompute(state) -> None:
    app = state.app
    cfg = app.extensions["idp.settings"]
    body = json.dumps(metadata(cfg.issuer), separators=(",", ":")).encode()
    app.extensions["idp.discovery"] = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def openid_configuration() -> Response:
    body, etag = current_app.extensions["idp.discovery"]
    return _document(body, etag, 3600)


@bp.get("/jwks.json")
def jwks() -> Response:
    ring = current_app.extensions["idp.keys"]
    ring.refresh()
    # max-age stays below the time a next key is published before it signs (settings.py).
    return _document(ring.jwks_body, ring.jwks_etag,
                     current_app.extensions["idp.settings"].jwks_max_age)
