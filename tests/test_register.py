"""Dynamic client registration (RFC 7591), client configuration (RFC 7592) and OIDC
Registration 1.0 metadata, including pairwise sectors, driven over HTTP."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from sqlalchemy import func, select

from idp import create_app
from idp.clients import create_initial_access_token, public_metadata
from idp.db import db
from idp.models import AuditEvent, Client, Consent, InitialAccessToken, RefreshToken
from idp.security import sha256_hex
from tests.conftest import BACKEND
from tests.helpers import RP, exchange, get_code, pkce_pair
from tests.peers.json_server import JSONServer

REDIRECT = "https://rp.example.com/cb"
WEB: dict[str, Any] = {"client_name": "Partner App", "redirect_uris": [REDIRECT]}


# -- helpers -----------------------------------------------------------------------------


def new_iat(app: Flask, *, uses: int = 1, ttl: int = 3600) -> str:
    with app.app_context():
        return create_initial_access_token(note="test", ttl=ttl, uses=uses)


def register(http: FlaskClient, iat: str | None, **meta: Any):
    headers = {"Authorization": f"Bearer {iat}"} if iat else {}
    return http.post("/register", json=meta, headers=headers)


def registered(http: FlaskClient, iat: str, **meta: Any) -> dict[str, Any]:
    response = register(http, iat, **meta)
    assert response.status_code == 201, response.json
    return response.json


def rp_from(body: dict[str, Any]) -> RP:
    """An RP for tests/helpers built from a registration response alone."""
    model = Client(client_id=body["client_id"], meta=public_metadata(body))
    return RP(body["client_id"], body.get("client_secret"), body["redirect_uris"][0], model)


def manage(http: FlaskClient, body: dict[str, Any], method: str = "GET", *,
           token: str | None = None, json: Any = None):
    """Call the registration_client_uri of ``body`` with its registration access token."""
    path = body["registration_client_uri"].removeprefix("http://localhost")
    bearer = token if token is not None else body["registration_access_token"]
    return http.open(path, method=method, json=json,
                     headers={"Authorization": f"Bearer {bearer}"})


def update_request(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What RFC 7592 §2.2 asks a client to send: its metadata and client_id, changed."""
    request = {k: v for k, v in body.items() if k not in (
        "registration_access_token", "registration_client_uri", "client_secret_expires_at",
        "client_id_issued_at", "client_secret")}
    request.update(changes)
    return {k: v for k, v in request.items() if v is not None}


def id_token_claims(http: FlaskClient, token: str) -> dict[str, Any]:
    jwks = KeySet.import_key_set(http.get("/jwks.json").json)
    return jwt.decode(token, jwks, algorithms=["RS256", "ES256", "EdDSA"]).claims


def sub_at(http: FlaskClient, body: dict[str, Any], user) -> str:
    """Sign ``user`` in at the registered client ``body``; the ``sub`` its ID token says."""
    rp = rp_from(body)
    verifier, _ = pkce_pair()
    code, _ = get_code(http, rp, user, verifier=verifier)
    response = exchange(http, rp, code, verifier=verifier)
    assert response.status_code == 200, response.json
    return id_token_claims(http, response.json["id_token"])["sub"]


def stored_client(app: Flask, client_id: str) -> Client | None:
    with app.app_context():
        client = db.session.get(Client, client_id)
        if client is not None:
            db.session.expunge(client)
        return client


def assert_invalid_token(response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.json["error"] == "invalid_token"


@pytest.fixture
def iat(app: Flask) -> str:
    return new_iat(app, uses=100)


@pytest.fixture
def peer() -> Iterator[JSONServer]:
    """A real HTTP server on 127.0.0.1 serving sector identifier documents."""
    with JSONServer() as server:
        yield server


@pytest.fixture
def app_with(app: Flask, settings) -> Iterator[Callable[..., Flask]]:
    """Another app on the same database and store with some settings changed; the ``app``
    fixture cleans up after both."""
    made: list[Flask] = []

    def make(**changes: Any) -> Flask:
        other = create_app(settings.replace(**changes))
        if BACKEND != "sqlite":
            other.extensions["idp.store"].prefix = app.extensions["idp.store"].prefix
        made.append(other)
        return other

    yield make
    for other in made:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


# -- registration ------------------------------------------------------------------------


def test_registration_returns_credentials_and_metadata_with_defaults(client, app, iat):
    response = register(client, iat, **WEB, contacts=["ops@rp.example.com"])
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    cid = body["client_id"]
    assert body["client_secret"] and body["registration_access_token"]
    assert body["client_secret_expires_at"] == 0
    assert isinstance(body["client_id_issued_at"], int)
    assert body["registration_client_uri"] == f"http://localhost/register/{cid}"
    assert body["redirect_uris"] == [REDIRECT]
    assert body["contacts"] == ["ops@rp.example.com"]
    assert body["client_name"] == "Partner App"
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["grant_types"] == ["authorization_code"]
    assert body["response_types"] == ["code"]
    assert body["id_token_signed_response_alg"] == "RS256"
    assert body["subject_type"] == "public"
    assert body["application_type"] == "web"
    assert body["scope"] == "openid profile email phone offline_access"
    stored = stored_client(app, cid)
    # Only digests at rest; and a registered client is never first party.
    assert stored.secret_hash == sha256_hex(body["client_secret"])
    assert stored.registration_token_hash == sha256_hex(body["registration_access_token"])
    assert body["client_secret"] not in str(stored.meta)
    assert stored.first_party is False


def test_registered_client_completes_the_code_flow(client, iat, factory):
    body = registered(client, iat, **WEB, id_token_signed_response_alg="ES256")
    user = factory.user()
    rp = rp_from(body)
    verifier, _ = pkce_pair()
    code, _ = get_code(client, rp, user, verifier=verifier, nonce="n-1")
    response = exchange(client, rp, code, verifier=verifier)
    assert response.status_code == 200, response.json
    token = response.json
    assert jws.extract_compact(token["id_token"].encode()).headers()["alg"] == "ES256"
    claims = id_token_claims(client, token["id_token"])
    assert claims["aud"] == body["client_id"]
    assert claims["sub"] == user.id
    assert claims["nonce"] == "n-1"
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + token["access_token"]})
    assert info.status_code == 200 and info.json["sub"] == user.id


def test_public_client_registers_without_a_secret(client, iat):
    body = registered(client, iat, **WEB, token_endpoint_auth_method="none")
    assert "client_secret" not in body
    assert "client_secret_expires_at" not in body


@pytest.mark.parametrize("authorization", [
    None, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer ",
], ids=["missing", "unknown", "other-scheme", "empty"])
def test_registration_without_a_valid_initial_access_token_is_401(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post("/register", json=WEB, headers=headers)
    assert_invalid_token(response)
    assert response.headers["Cache-Control"] == "no-store"


def test_initial_access_token_is_single_use(client, app):
    token = new_iat(app, uses=1)
    assert register(client, token, **WEB).status_code == 201
    assert_invalid_token(register(client, token, **WEB))


def test_expired_initial_access_token_is_refused(client, app, clock):
    token = new_iat(app, uses=5, ttl=60)
    clock.advance(61)
    assert_invalid_token(register(client, token, **WEB))


def test_refused_metadata_does_not_spend_the_initial_access_token(client, app):
    token = new_iat(app, uses=1)
    assert register(client, token, redirect_uris=["ftp://rp.example.com/cb"]).status_code == 400
    assert register(client, token, **WEB).status_code == 201


def test_concurrent_registrations_with_a_one_use_token_register_one_client(app):
    token = new_iat(app, uses=1)
    attempts = 8
    barrier = threading.Barrier(attempts)
    statuses: list[int] = []

    def attempt() -> None:
        http = app.test_client()
        barrier.wait()
        statuses.append(register(http, token, **WEB).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [201] + [401] * (attempts - 1)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Client)) == 1
        row = db.session.get(InitialAccessToken, sha256_hex(token))
        assert row.uses_left == 0


def test_open_registration_needs_no_initial_access_token(app_with):
    http = app_with(registration_requires_iat=False).test_client()
    assert register(http, None, **WEB).status_code == 201


def test_registration_is_audited(client, app, iat):
    body = registered(client, iat, **WEB)
    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "client.register")).one()
        assert event.target == body["client_id"]
        assert event.actor == "iat:" + sha256_hex(iat)[:16]


def web(**changes: Any) -> dict[str, Any]:
    """WEB with some members changed; None removes one."""
    meta = {**WEB, **changes}
    return {k: v for k, v in meta.items() if v is not None}


_RSA_PUBLIC = RSAKey.generate_key(2048).as_dict(private=False)
REFUSED = [
    ("no-redirect-uris", web(redirect_uris=None), "invalid_redirect_uri"),
    ("redirect-uris-not-a-list", web(redirect_uris=REDIRECT), "invalid_redirect_uri"),
    ("relative-redirect", web(redirect_uris=["/cb"]), "invalid_redirect_uri"),
    ("redirect-fragment", web(redirect_uris=[REDIRECT + "#top"]), "invalid_redirect_uri"),
    ("redirect-javascript", web(redirect_uris=["javascript:alert(1)"]), "invalid_redirect_uri"),
    ("redirect-custom-scheme-for-web", web(redirect_uris=["com.example.app:/cb"]),
     "invalid_redirect_uri"),
    ("redirect-credentials", web(redirect_uris=["https://rp.example.com@evil.example/cb"]),
     "invalid_redirect_uri"),
    ("redirect-bad-port", web(redirect_uris=["https://rp.example.com:99999/cb"]),
     "invalid_redirect_uri"),
    ("response-type-token", web(response_types=["token"]), "invalid_client_metadata"),
    ("grant-implicit", web(grant_types=["implicit"]), "invalid_client_metadata"),
    ("grant-password", web(grant_types=["password"]), "invalid_client_metadata"),
    ("code-response-without-code-grant",
     web(grant_types=["client_credentials"], response_types=["code"]), "invalid_client_metadata"),
    ("code-grant-without-code-response", web(response_types=[]), "invalid_client_metadata"),
    ("refresh-without-code", web(grant_types=["refresh_token"], response_types=[]),
     "invalid_client_metadata"),
    ("auth-client-secret-jwt", web(token_endpoint_auth_method="client_secret_jwt"),
     "invalid_client_metadata"),
    ("public-client-credentials",
     {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
     "invalid_client_metadata"),
    ("private-key-jwt-without-keys", web(token_endpoint_auth_method="private_key_jwt"),
     "invalid_client_metadata"),
    ("jwks-and-jwks-uri", web(jwks={"keys": [_RSA_PUBLIC]},
                              jwks_uri="https://rp.example.com/jwks"), "invalid_client_metadata"),
    ("jwks-private-key", web(jwks={"keys": [RSAKey.generate_key(2048).as_dict(private=True)]}),
     "invalid_client_metadata"),
    ("jwks-symmetric-key", web(jwks={"keys": [OctKey.generate_key(256).as_dict()]}),
     "invalid_client_metadata"),
    ("jwks-not-a-set", web(jwks=[_RSA_PUBLIC]), "invalid_client_metadata"),
    ("id-token-alg-none", web(id_token_signed_response_alg="none"), "invalid_client_metadata"),
    ("id-token-alg-hs256", web(id_token_signed_response_alg="HS256"), "invalid_client_metadata"),
    ("auth-signing-alg-none", web(token_endpoint_auth_signing_alg="none"),
     "invalid_client_metadata"),
    ("id-token-encryption", web(id_token_encrypted_response_alg="RSA-OAEP"),
     "invalid_client_metadata"),
    ("signed-userinfo", web(userinfo_signed_response_alg="RS256"), "invalid_client_metadata"),
    ("encrypted-userinfo", web(userinfo_encrypted_response_alg="RSA-OAEP"),
     "invalid_client_metadata"),
    ("request-objects", web(request_object_signing_alg="RS256"), "invalid_client_metadata"),
    ("dpop-bound", web(dpop_bound_access_tokens=True), "invalid_client_metadata"),
    ("subject-type-unknown", web(subject_type="opaque"), "invalid_client_metadata"),
    ("scope-unknown", web(scope="openid admin"), "invalid_client_metadata"),
    ("post-logout-fragment", web(post_logout_redirect_uris=["https://rp.example.com/#x"]),
     "invalid_client_metadata"),
    ("post-logout-javascript", web(post_logout_redirect_uris=["javascript:alert(1)"]),
     "invalid_client_metadata"),
    ("pairwise-two-hosts", web(subject_type="pairwise", redirect_uris=[
        "https://a.example.com/cb", "https://b.example.com/cb"]), "invalid_client_metadata"),
    ("application-type-unknown", web(application_type="desktop"), "invalid_client_metadata"),
    ("client-name-not-a-string", web(client_name=["x"]), "invalid_client_metadata"),
    ("bad-language-tag", web(**{"client_name#日本": "x"}), "invalid_client_metadata"),
    ("logo-javascript", web(logo_uri="javascript:alert(1)"), "invalid_client_metadata"),
    ("contacts-not-a-list", web(contacts="ops@rp.example.com"), "invalid_client_metadata"),
    ("negative-max-age", web(default_max_age=-1), "invalid_client_metadata"),
    ("max-age-string", web(default_max_age="60"), "invalid_client_metadata"),
    ("auth-time-string", web(require_auth_time="yes"), "invalid_client_metadata"),
]


@pytest.mark.parametrize(("meta", "error"), [(m, e) for _, m, e in REFUSED],
                         ids=[i for i, _, _ in REFUSED])
def test_refused_metadata_answers_400_with_the_spec_error(client, iat, meta, error):
    response = register(client, iat, **meta)
    assert response.status_code == 400, response.json
    assert response.json["error"] == error
    assert response.json["error_description"]
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"'],
                         ids=["not-json", "array", "string"])
def test_registration_body_must_be_a_json_object(client, iat, body):
    response = client.post("/register", data=body, content_type="application/json",
                           headers={"Authorization": f"Bearer {iat}"})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize("redirect", [
    "http://rp.example.com/cb", "http://localhost/cb", "http://127.0.0.1:8080/cb",
    "http://[::1]:8080/cb",
], ids=["plain-host", "localhost", "ipv4-loopback", "ipv6-loopback"])
def test_plain_http_redirects_are_allowed_outside_production(client, iat, redirect):
    assert register(client, iat, redirect_uris=[redirect]).status_code == 201


@pytest.mark.parametrize(("redirect", "status"), [
    ("http://rp.example.com/cb", 400), ("http://localhost:3000/cb", 201),
    ("http://127.0.0.1:8080/cb", 201), ("http://[::1]/cb", 201),
    ("https://rp.example.com/cb", 201),
], ids=["plain-host", "localhost", "ipv4-loopback", "ipv6-loopback", "https"])
def test_production_allows_plain_http_redirects_only_to_loopback(app_with, redirect, status):
    prod = app_with(environment="production", issuer="https://idp.example.com")
    token = new_iat(prod)
    response = register(prod.test_client(), token, redirect_uris=[redirect])
    assert response.status_code == status, response.json
    if status == 400:
        assert response.json["error"] == "invalid_redirect_uri"


def test_production_refuses_plain_http_sector_identifier_uri(app_with, peer):
    prod = app_with(environment="production", issuer="https://idp.example.com")
    peer.documents["/sector.json"] = [REDIRECT]
    response = register(prod.test_client(), new_iat(prod), **WEB, subject_type="pairwise",
                        sector_identifier_uri=peer.url("/sector.json"))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
    assert peer.requests == []


def test_native_app_may_register_a_private_use_scheme(client, iat):
    body = registered(client, iat, application_type="native", token_endpoint_auth_method="none",
                      redirect_uris=["com.example.app:/oauth2redirect", "http://127.0.0.1/cb"])
    assert body["application_type"] == "native"
    assert body["redirect_uris"][0] == "com.example.app:/oauth2redirect"


def test_language_tagged_names_and_information_pages_are_kept(client, iat):
    meta = {**WEB, "client_name#ja-Jpan-JP": "パートナーアプリ", "client_name#en": "Partner",
            "logo_uri": "https://rp.example.com/logo.png",
            "tos_uri#ja": "https://rp.example.com/ja/tos", "policy_uri": "https://rp.example.com/p",
            "client_uri": "https://rp.example.com/", "default_max_age": 3600,
            "require_auth_time": True, "post_logout_redirect_uris": ["https://rp.example.com/bye"],
            "software_id": "4NRB1-0XZABZI9E6-5SM3R", "software_version": "2.1"}
    body = registered(client, iat, **meta)
    for name, value in meta.items():
        assert body[name] == value, name
    read = manage(client, body).json
    assert read["client_name#ja-Jpan-JP"] == "パートナーアプリ"


def test_unknown_and_server_only_metadata_is_ignored(client, app, iat):
    body = registered(client, iat, **WEB, introspection=True, sector_identifier="victim.example",
                      first_party=True, client_id="chosen", software_statement="e30.e30.",
                      x_custom="kept?")
    for name in ("introspection", "sector_identifier", "first_party", "software_statement",
                 "x_custom"):
        assert name not in body
    assert body["client_id"] != "chosen"
    stored = stored_client(app, body["client_id"])
    # Resource-server rights and pairwise sectors are the operator's and the server's to set.
    assert "introspection" not in stored.meta and "sector_identifier" not in stored.meta
    assert stored.first_party is False


# -- RFC 7592 client configuration -------------------------------------------------------


def test_client_reads_its_registration(client, iat):
    body = registered(client, iat, **WEB)
    response = manage(client, body)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    read = response.json
    # The secret is stored hashed, so a read cannot repeat it.
    assert "client_secret" not in read
    assert read == {k: v for k, v in body.items() if k != "client_secret"}


def test_configuration_endpoint_refuses_wrong_tokens_and_unknown_clients_alike(client, iat):
    first = registered(client, iat, **WEB)
    second = registered(client, iat, **WEB)
    for method in ("GET", "PUT", "DELETE"):
        assert_invalid_token(manage(client, first, method, token="wrong"))
        # Another client's valid token does not open this one.
        assert_invalid_token(manage(client, first, method,
                                    token=second["registration_access_token"]))
    unknown = {**first, "registration_client_uri": "http://localhost/register/cl_nobody"}
    assert_invalid_token(manage(client, unknown))
    assert_invalid_token(client.get(first["registration_client_uri"]))
    assert manage(client, first).status_code == 200


def test_operator_created_clients_cannot_be_managed(client, factory):
    rp = factory.rp()
    response = client.get(f"/register/{rp.client_id}", headers={"Authorization": "Bearer x"})
    assert_invalid_token(response)


def test_update_replaces_the_metadata(client, app, iat):
    body = registered(client, iat, **WEB, contacts=["ops@rp.example.com"], default_max_age=60,
                      scope="openid email")
    request = update_request(body, client_name="Renamed", contacts=None, scope=None,
                             redirect_uris=["https://rp.example.com/new"],
                             client_secret=body["client_secret"])
    response = manage(client, body, "PUT", json=request)
    assert response.status_code == 200, response.json
    updated = response.json
    assert updated["client_name"] == "Renamed"
    assert updated["redirect_uris"] == ["https://rp.example.com/new"]
    # Omitted fields are deleted, or back to their defaults (RFC 7592 §2.2).
    assert "contacts" not in updated
    assert updated["scope"] == "openid profile email phone offline_access"
    assert updated["default_max_age"] == 60
    assert updated["registration_access_token"] == body["registration_access_token"]
    assert "client_secret" not in updated
    assert manage(client, body).json == updated
    stored = stored_client(app, body["client_id"])
    assert stored.secret_hash == sha256_hex(body["client_secret"])


def test_update_keeps_operator_settings(client, app, iat):
    body = registered(client, iat, **WEB)
    with app.app_context():
        row = db.session.get(Client, body["client_id"])
        row.meta = {**row.meta, "introspection": True}
        db.session.commit()
    response = manage(client, body, "PUT", json=update_request(body, client_name="Renamed"))
    assert response.status_code == 200
    assert "introspection" not in response.json
    assert stored_client(app, body["client_id"]).meta["introspection"] is True


def test_update_is_validated_like_a_registration(client, iat):
    body = registered(client, iat, **WEB)
    response = manage(client, body, "PUT",
                      json=update_request(body, redirect_uris=["https://rp.example.com/#x"]))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_redirect_uri"
    assert manage(client, body).json["redirect_uris"] == [REDIRECT]


@pytest.mark.parametrize("change", [
    {"client_id": None}, {"client_id": "cl_other"}, {"client_secret": "wrong"},
    {"registration_access_token": "x"}, {"client_id_issued_at": 0},
], ids=["no-client-id", "other-client-id", "wrong-secret", "sends-token", "sends-issued-at"])
def test_update_request_must_follow_rfc7592(client, iat, change):
    body = registered(client, iat, **WEB)
    response = manage(client, body, "PUT", json=update_request(body, **change))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_update_of_the_authentication_method_issues_or_drops_the_secret(client, app, iat):
    body = registered(client, iat, **WEB)
    public = manage(client, body, "PUT",
                    json=update_request(body, token_endpoint_auth_method="none")).json
    assert "client_secret_expires_at" not in public
    assert stored_client(app, body["client_id"]).secret_hash is None
    confidential = manage(client, body, "PUT", json=update_request(
        public, token_endpoint_auth_method="client_secret_post")).json
    secret = confidential["client_secret"]
    assert secret != body["client_secret"]
    assert confidential["client_secret_expires_at"] == 0
    assert stored_client(app, body["client_id"]).secret_hash == sha256_hex(secret)


def test_delete_removes_the_client_its_refresh_tokens_and_consents(client, app, iat, factory):
    body = registered(client, iat, **WEB, grant_types=["authorization_code", "refresh_token"])
    user = factory.user()
    rp = rp_from(body)
    verifier, _ = pkce_pair()
    code, _ = get_code(client, rp, user, verifier=verifier, scope="openid offline_access",
                       prompt="consent")
    token = exchange(client, rp, code, verifier=verifier).json
    assert "refresh_token" in token
    response = manage(client, body, "DELETE")
    assert response.status_code == 204
    assert response.get_data() == b""
    assert_invalid_token(manage(client, body))
    assert stored_client(app, body["client_id"]) is None
    with app.app_context():
        rows = db.session.scalars(select(RefreshToken).where(
            RefreshToken.client_id == body["client_id"])).all()
        assert rows and all(r.revoked_at is not None for r in rows)
        assert db.session.get(Consent, (user.id, body["client_id"])) is None
    refreshed = client.post("/token", headers=rp.basic, data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert refreshed.status_code == 401
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + token["access_token"]})
    assert info.status_code == 401


# -- pairwise subjects and sector identifiers ----------------------------------------------


def pairwise(redirect: str, **meta: Any) -> dict[str, Any]:
    return {"redirect_uris": [redirect], "subject_type": "pairwise", **meta}


def test_pairwise_subjects_differ_between_sectors(client, iat, factory):
    user = factory.user()
    one = registered(client, iat, **pairwise("https://one.example.com/cb"))
    two = registered(client, iat, **pairwise("https://two.example.com/cb"))
    public = registered(client, iat, **WEB)
    subs = {sub_at(client, one, user), sub_at(client, two, user), sub_at(client, public, user)}
    assert len(subs) == 3
    assert user.id in subs


def test_pairwise_subject_is_stable_within_a_redirect_host(client, iat, factory):
    user = factory.user()
    one = registered(client, iat, **pairwise("https://rp.example.com/a"))
    two = registered(client, iat, **pairwise("https://rp.example.com/b"))
    assert sub_at(client, one, user) == sub_at(client, two, user) != user.id


def test_clients_listed_in_one_sector_document_share_pairwise_subjects(client, iat, factory,
                                                                       peer):
    user = factory.user()
    peer.documents["/sector.json"] = ["https://app.example.com/cb", "https://web.example.org/cb"]
    sector = peer.url("/sector.json")
    one = registered(client, iat, **pairwise("https://app.example.com/cb",
                                             sector_identifier_uri=sector))
    two = registered(client, iat, **pairwise("https://web.example.org/cb",
                                             sector_identifier_uri=sector))
    assert one["sector_identifier_uri"] == sector
    assert peer.requests == ["/sector.json", "/sector.json"]
    sub = sub_at(client, one, user)
    assert sub == sub_at(client, two, user) != user.id
    other = registered(client, iat, **pairwise("https://app.example.com/cb"))
    assert sub_at(client, other, user) != sub


def test_sector_document_must_list_every_redirect_uri(client, iat, peer):
    peer.documents["/sector.json"] = ["https://app.example.com/cb"]
    response = register(client, iat, subject_type="pairwise",
                        redirect_uris=["https://app.example.com/cb", "https://app.example.com/2"],
                        sector_identifier_uri=peer.url("/sector.json"))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
    assert "https://app.example.com/2" in response.json["error_description"]


@pytest.mark.parametrize(("path", "document"), [
    ("/missing.json", None), ("/object.json", {"redirect_uris": [REDIRECT]}),
], ids=["not-found", "not-an-array"])
def test_unusable_sector_document_is_refused(client, iat, peer, path, document):
    if document is not None:
        peer.documents[path] = document
    response = register(client, iat, **pairwise(REDIRECT, sector_identifier_uri=peer.url(path)))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"


def test_unreachable_sector_document_is_refused_within_the_timeout(app_with, peer):
    slow = app_with(http_timeout=0.5)
    started = time.monotonic()
    # A closed port on loopback: refused at once, never hangs.
    response = register(slow.test_client(), new_iat(slow),
                        **pairwise(REDIRECT, sector_identifier_uri="http://127.0.0.1:9/s.json"))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
    assert time.monotonic() - started < 5


def test_production_will_not_fetch_sector_documents_from_internal_addresses(app_with):
    prod = app_with(environment="production", issuer="https://idp.example.com")
    response = register(prod.test_client(), new_iat(prod), **pairwise(
        REDIRECT, sector_identifier_uri="https://localhost/sector.json"))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_client_metadata"
    assert "not a public address" in response.json["error_description"]


# -- private_key_jwt -------------------------------------------------------------------------


@pytest.mark.parametrize("key", [RSAKey.generate_key(2048), ECKey.generate_key("P-256")],
                         ids=["RS256", "ES256"])
def test_private_key_jwt_client_authenticates_with_its_registered_jwks(client, iat, key):
    alg = "RS256" if isinstance(key, RSAKey) else "ES256"
    public = {**key.as_dict(private=False), "kid": "k1", "use": "sig"}
    body = registered(client, iat, client_name="Batch", grant_types=["client_credentials"],
                      token_endpoint_auth_method="private_key_jwt", jwks={"keys": [public]},
                      token_endpoint_auth_signing_alg=alg, scope="profile")
    assert "client_secret" not in body and body["response_types"] == []
    cid = body["client_id"]

    def assertion(jti: str) -> str:
        now = int(time.time())
        claims = {"iss": cid, "sub": cid, "aud": "http://localhost/token", "jti": jti,
                  "iat": now, "exp": now + 60}
        return jwt.encode({"alg": alg, "kid": "k1"}, claims, key, algorithms=[alg])

    def token_request(signed: str):
        return client.post("/token", data={
            "grant_type": "client_credentials", "scope": "profile",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed})

    signed = assertion(uuid.uuid4().hex)
    response = token_request(signed)
    assert response.status_code == 200, response.json
    assert response.json["access_token"] and response.json["scope"] == "profile"
    # The same assertion twice is a replay.
    assert token_request(signed).status_code == 401
    # A key the client did not register proves nothing.
    stranger = RSAKey.generate_key(2048)
    now = int(time.time())
    forged = jwt.encode({"alg": "RS256", "kid": "k1"}, {
        "iss": cid, "sub": cid, "aud": "http://localhost/token", "jti": uuid.uuid4().hex,
        "exp": now + 60}, stranger, algorithms=["RS256"])
    assert token_request(forged).status_code == 401



def test_a_registered_client_can_never_become_a_contracts_admin_client(app, client, iat,
                                                                       factory):
    """The admin API trusts a client's ``contract_id`` (set by an operator's CLI only):
    registration must not be a way to claim one, nor the ``admin`` scope."""
    victim = factory.user()
    body = registered(client, iat, grant_types=["client_credentials"], redirect_uris=[],
                      response_types=[], contract_id=victim.contract_id)
    stored = stored_client(app, body["client_id"])
    assert "contract_id" not in stored.meta
    assert "admin" not in stored.scope.split()
    token = client.post("/token", data={"grant_type": "client_credentials", "scope": "admin"},
                        auth=(body["client_id"], body["client_secret"]))
    assert token.status_code == 400
    assert token.json["error"] == "invalid_scope"
