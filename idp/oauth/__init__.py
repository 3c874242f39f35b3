"""OAuth 2.0 / OpenID Connect wiring. Only this package touches Authlib's server classes."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app

from .client_cache import ClientCache
from .grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    IDTokenExtension,
    PrivateKeyJWT,
    RefreshTokenGrant,
    S256Only,
)
from .server import Introspection, Revocation, Server


def server() -> Server:
    return current_app.extensions["idp.oauth"]


def init_oauth(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    # Authlib refuses http:// request URLs; TLS is the deployment's job (the issuer must be
    # https in production, settings.py) and the app may sit behind a TLS-terminating proxy.
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
    app.extensions["idp.pairwise_secret"] = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"idp-pairwise", info=b"sub-v1"
    ).derive(settings.secret_key.encode())
    # One server per app: Authlib keeps its grant and endpoint registries on the instance.
    server = Server()
    server.init_app(app)
    server.register_grant(AuthorizationCodeGrant, [S256Only(required=True), IDTokenExtension()])
    server.register_grant(RefreshTokenGrant, [IDTokenExtension()])
    server.register_grant(ClientCredentialsGrant)
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions["idp.oauth"] = server
    app.extensions["idp.client_cache"] = ClientCache()
