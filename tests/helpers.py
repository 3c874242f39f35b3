"""Test helpers: make contracts, users and clients; drive the code flow like a browser."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from idp.accounts import create_contract, create_user
from idp.clients import create_client
from idp.models import Client, User

PASSWORD = "Correct-Horse-9"
REDIRECT = "https://rp.example.com/cb"
ISSUER = "http://localhost"
ALGS = ("RS256", "ES256", "EdDSA")


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in page"
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class RP:
    """A registered client as a test sees it."""

    client_id: str
    secret: str | None
    redirect_uri: str
    model: Client
    #: The private key of a ``private_key_jwt`` client (``private_key_jwt_rp``).
    key: Any = None
    key_alg: str = "RS256"

    @property
    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@dataclass
class Factory:
    app: Flask
    _n: int = field(default=0)

    def user(self, *, email: str | None = None, password: str = PASSWORD, role: str = "owner",
             brand: str = "codec", name: str = "山田 太郎", contract_id: str | None = None,
             two_step: bool = False) -> User:
        """A user of a new contract (its owner), or of ``contract_id``.

        New contracts have 2-step verification off unless ``two_step``: the tests of
        everything else sign in with a password alone; tests/test_mfa_*.py turn it on.
        """
        self._n += 1
        email = email or f"user{self._n}@example.com"
        with self.app.app_context():
            if contract_id is None:
                _, user = create_contract(brand=brand, plan="basic", owner_email=email,
                                          owner_password=password, owner_name=name,
                                          two_step=two_step)
            else:
                user = create_user(contract_id=contract_id, email=email, role=role,
                                   password=password, name=name)
            from idp.db import db

            db.session.refresh(user)
            db.session.expunge(user)
        return user

    def rp(self, *, redirect_uri: str = REDIRECT, auth_method: str = "client_secret_basic",
           grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
           first_party: bool = False, **meta: Any) -> RP:
        metadata = {
            "client_name": meta.pop("client_name", "Partner App"),
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": auth_method,
            "grant_types": list(grant_types),
            **meta,
        }
        with self.app.app_context():
            client, secret = create_client(metadata, first_party=first_party)
            from idp.db import db

            db.session.refresh(client)
            db.session.expunge(client)
        return RP(client.client_id, secret, redirect_uri, client)


def sign_in(http: FlaskClient, location: str, *, email: str, password: str = PASSWORD):
    """Follow a redirect to the login page and submit the credentials."""
    page = http.get(location)
    assert page.status_code == 200, page.data
    html = page.get_data(as_text=True)
    flow = re.search(r'name="flow" value="([^"]+)"', html)
    data = {"csrf_token": csrf_from(html), "email": email, "password": password}
    if flow:
        data["flow"] = flow.group(1)
    return http.post("/login", data=data)


def authorize(http: FlaskClient, rp: RP, *, scope: str = "openid profile email",
              verifier: str | None = None, **params: str):
    """Send an authorization request; returns the response (a redirect somewhere)."""
    query = {"client_id": rp.client_id, "redirect_uri": rp.redirect_uri, "response_type": "code",
             "scope": scope, "state": "st-" + secrets.token_hex(4), "nonce": secrets.token_hex(8)}
    if verifier is not None:
        query.update(code_challenge=pkce_pair_from(verifier), code_challenge_method="S256")
    query.update(params)
    return http.get("/authorize", query_string=query)


def pkce_pair_from(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def consent_if_asked(http: FlaskClient, response, *, decision: str = "allow"):
    if response.status_code == 302 and "/consent" in response.headers["Location"]:
        page = http.get(response.headers["Location"])
        html = page.get_data(as_text=True)
        flow = re.search(r'name="flow" value="([^"]+)"', html).group(1)
        return http.post("/consent", data={"csrf_token": csrf_from(html), "flow": flow,
                                           "decision": decision})
    return response


def get_code(http: FlaskClient, rp: RP, user: User, *, scope: str = "openid profile email",
             verifier: str | None = None, **params: str) -> tuple[str, dict[str, str]]:
    """Full front channel: authorize -> login -> consent -> code. Returns (code, query)."""
    response = authorize(http, rp, scope=scope, verifier=verifier, **params)
    if response.status_code == 302 and "/login" in response.headers["Location"]:
        response = sign_in(http, response.headers["Location"], email=user.email)
    response = consent_if_asked(http, response)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.startswith(rp.redirect_uri), location
    query = query_of(location)
    assert "code" in query, query
    return query["code"], query


def exchange(http: FlaskClient, rp: RP, code: str, *, verifier: str | None = None,
             **extra: str):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri}
    if verifier:
        data["code_verifier"] = verifier
    data.update(extra)
    return token_request(http, rp, **data)


# -- token endpoint and friends ----------------------------------------------------------


def new_key(alg: str = "RS256"):
    """A fresh private key for ``alg`` (a client's signing key in tests)."""
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    return OKPKey.generate_key("Ed25519", private=True)


def public_jwks(*keys) -> dict[str, Any]:
    return KeySet(list(keys)).as_dict(private=False)


def client_assertion(client_id: str, key, *, alg: str = "RS256",
                     audience: str = ISSUER + "/token", lifetime: int = 60,
                     jti: str | None = None, issuer: str | None = None) -> str:
    """A ``private_key_jwt`` assertion (RFC 7523 §3) signed with ``key``."""
    t = int(time.time())
    claims = {"iss": issuer or client_id, "sub": client_id, "aud": audience,
              "iat": t, "exp": t + lifetime, "jti": jti or uuid.uuid4().hex}
    return jwt.encode({"alg": alg, "kid": key.thumbprint()}, claims, key, algorithms=[alg])


def private_key_jwt_rp(factory: Factory, *, alg: str = "RS256",
                       grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
                       **meta: Any) -> RP:
    """A client authenticating with ``private_key_jwt``, registered with its public JWKS."""
    key = new_key(alg)
    rp = factory.rp(auth_method="private_key_jwt", grant_types=grant_types,
                    jwks=public_jwks(key), **meta)
    rp.key, rp.key_alg = key, alg
    return rp


def client_auth(rp: RP, *, audience: str = ISSUER + "/token") -> tuple[dict[str, str],
                                                                       dict[str, str]]:
    """Headers and form fields that authenticate ``rp`` the way it registered."""
    method = rp.model.token_endpoint_auth_method
    if method == "client_secret_basic":
        return rp.basic, {}
    if method == "client_secret_post":
        return {}, {"client_id": rp.client_id, "client_secret": rp.secret or ""}
    if method == "private_key_jwt":
        return {}, {
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(rp.client_id, rp.key, alg=rp.key_alg,
                                                 audience=audience),
        }
    return {}, {"client_id": rp.client_id}


def token_request(http: FlaskClient, rp: RP, **data: str):
    """POST /token authenticated as ``rp``."""
    headers, auth = client_auth(rp)
    return http.post("/token", data={**auth, **data}, headers=headers)


def endpoint_request(http: FlaskClient, rp: RP, path: str, **data: str):
    """POST to /revoke or /introspect authenticated as ``rp``."""
    headers, auth = client_auth(rp, audience=ISSUER + path)
    return http.post(path, data={**auth, **data}, headers=headers)


def tokens_for(http: FlaskClient, rp: RP, user: User, *, scope: str = "openid profile email",
               verifier: str | None = None, **params: str) -> dict[str, Any]:
    """Front channel and code exchange; the token response body (asserted 200)."""
    if verifier is None and rp.model.token_endpoint_auth_method == "none":
        verifier = pkce_pair()[0]
    code, _ = get_code(http, rp, user, scope=scope, verifier=verifier, **params)
    response = exchange(http, rp, code, verifier=verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def refresh(http: FlaskClient, rp: RP, refresh_token: str, **extra: str):
    return token_request(http, rp, grant_type="refresh_token", refresh_token=refresh_token,
                         **extra)


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + access_token}


def verify_id_token(http: FlaskClient, token: str, *, audience: str) -> tuple[dict, dict]:
    """Verify ``token`` with the key its ``kid`` names in the published JWKS; (header, claims)."""
    jwks = KeySet.import_key_set(http.get("/jwks.json").json)
    header = jwt.decode(token, jwks, algorithms=list(ALGS)).header
    key = jwks.get_by_kid(header["kid"])
    decoded = jwt.decode(token, key, algorithms=[header["alg"]])
    assert decoded.claims["aud"] == audience
    return decoded.header, decoded.claims


def flow_from(html: str) -> str:
    match = re.search(r'name="flow" value="([^"]+)"', html)
    assert match, "no flow id in page"
    return match.group(1)


def form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of a page (form_post responses, confirmation forms)."""
    import html as html_lib

    return {html_lib.unescape(n): html_lib.unescape(v) for n, v in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}
