"""Token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §5; RFC 7636 §4.6; OIDC Core §3.1.3)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading

import pytest

from tests.helpers import (
    ISSUER,
    bearer,
    exchange,
    get_code,
    pkce_pair,
    refresh,
    token_request,
    tokens_for,
    verify_id_token,
)

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def assert_no_store(response) -> None:
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    assert response.mimetype == "application/json"


def assert_error(response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.json["error"] == error
    assert_no_store(response)


# -- authorization_code ----------------------------------------------------------------------


@pytest.mark.parametrize("method", AUTH_METHODS)
def test_code_is_exchanged_with_each_client_auth_method(client, factory, method):
    user = factory.user()
    rp = factory.rp(auth_method=method)
    verifier = pkce_pair()[0] if method == "none" else None
    code, _ = get_code(client, rp, user, verifier=verifier,
                       scope="openid profile offline_access")
    response = exchange(client, rp, code, verifier=verifier)
    assert response.status_code == 200, response.json
    assert_no_store(response)
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] > 0
    assert set(body["scope"].split()) == {"openid", "profile", "offline_access"}
    assert body["refresh_token"] and body["id_token"]
    info = client.get("/userinfo", headers=bearer(body["access_token"]))
    assert info.status_code == 200
    assert info.json["sub"] == user.id


def test_confidential_client_may_use_pkce_too(client, factory):
    user = factory.user()
    rp = factory.rp()
    verifier, _ = pkce_pair()
    code, _ = get_code(client, rp, user, verifier=verifier)
    assert exchange(client, rp, code).json["error"] == "invalid_request"  # verifier missing
    code, _ = get_code(client, rp, user, verifier=verifier)
    assert exchange(client, rp, code, verifier=verifier).status_code == 200


def test_reused_code_is_refused_and_revokes_what_it_issued(client, factory):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user, scope="openid offline_access")
    first = exchange(client, rp, code).json
    assert client.get("/userinfo", headers=bearer(first["access_token"])).status_code == 200

    assert_error(exchange(client, rp, code), "invalid_grant")

    info = client.get("/userinfo", headers=bearer(first["access_token"]))
    assert info.status_code == 401
    assert_error(refresh(client, rp, first["refresh_token"]), "invalid_grant")


def test_reused_code_also_revokes_tokens_refreshed_since(client, factory):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user, scope="openid offline_access")
    first = exchange(client, rp, code).json
    second = refresh(client, rp, first["refresh_token"]).json
    assert_error(exchange(client, rp, code), "invalid_grant")
    assert client.get("/userinfo", headers=bearer(second["access_token"])).status_code == 401
    assert_error(refresh(client, rp, second["refresh_token"]), "invalid_grant")


@pytest.mark.parametrize(
    "redirect_uri", ["https://rp.example.com/other", "https://rp.example.com/cb/", None],
    ids=["other", "trailing-slash", "missing"],
)
def test_redirect_uri_must_match_the_authorization_request(client, factory, redirect_uri):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user)
    data = {"grant_type": "authorization_code", "code": code}
    if redirect_uri:
        data["redirect_uri"] = redirect_uri
    assert_error(token_request(client, rp, **data), "invalid_grant")


def test_code_issued_to_another_client_is_refused(client, factory):
    user = factory.user()
    rp, thief = factory.rp(), factory.rp()
    code, _ = get_code(client, rp, user)
    response = token_request(client, thief, grant_type="authorization_code", code=code,
                             redirect_uri=rp.redirect_uri)
    assert_error(response, "invalid_grant")


def test_expired_code_is_refused(client, factory, clock, settings):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user)
    clock.advance(settings.code_ttl + 1)
    assert_error(exchange(client, rp, code), "invalid_grant")


def test_code_within_its_lifetime_is_accepted(client, factory, clock, settings):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user)
    clock.advance(settings.code_ttl - 5)
    assert exchange(client, rp, code).status_code == 200


def test_unknown_code_is_refused(client, factory):
    rp = factory.rp()
    assert_error(exchange(client, rp, "made-up-code"), "invalid_grant")


def test_missing_code_is_invalid_request(client, factory):
    rp = factory.rp()
    response = token_request(client, rp, grant_type="authorization_code",
                             redirect_uri=rp.redirect_uri)
    assert_error(response, "invalid_request")


def test_wrong_pkce_verifier_is_invalid_grant(client, factory):
    user = factory.user()
    rp = factory.rp(auth_method="none")
    verifier, _ = pkce_pair()
    code, _ = get_code(client, rp, user, verifier=verifier)
    assert_error(exchange(client, rp, code, verifier=pkce_pair()[0]), "invalid_grant")


def test_public_client_without_verifier_is_refused(client, factory):
    user = factory.user()
    rp = factory.rp(auth_method="none")
    verifier, _ = pkce_pair()
    code, _ = get_code(client, rp, user, verifier=verifier)
    assert_error(exchange(client, rp, code), "invalid_request")


def test_verifier_without_challenge_is_invalid_request(client, factory):
    # RFC 9700 §2.1.1: a PKCE downgrade must fail.
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user)
    assert_error(exchange(client, rp, code, verifier=pkce_pair()[0]), "invalid_request")


def test_concurrent_exchanges_of_one_code_issue_tokens_once(app, client, factory):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user)
    n = 4
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def redeem() -> None:
        http = app.test_client()
        barrier.wait()
        statuses.append(exchange(http, rp, code).status_code)

    threads = [threading.Thread(target=redeem) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200] + [400] * (n - 1)


# -- client authentication failures ----------------------------------------------------------


def test_bad_client_secret_in_basic_is_401_with_a_challenge(client, factory):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user)
    raw = base64.b64encode(f"{rp.client_id}:wrong".encode()).decode()
    response = client.post("/token", headers={"Authorization": "Basic " + raw}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri})
    assert_error(response, "invalid_client", 401)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Basic ")
    assert "realm=" in challenge


def test_bad_client_secret_in_body_is_401(client, factory):
    rp = factory.rp(auth_method="client_secret_post")
    response = client.post("/token", data={"grant_type": "authorization_code", "code": "x",
                                           "redirect_uri": rp.redirect_uri,
                                           "client_id": rp.client_id, "client_secret": "no"})
    assert_error(response, "invalid_client", 401)
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(
    "auth",
    [
        {"headers": {"Authorization": "Basic " + base64.b64encode(b"ghost:secret").decode()}},
        {"data": {"client_id": "ghost", "client_secret": "secret"}},
        {"data": {"client_id": "ghost"}},
        {},
    ],
    ids=["basic-unknown", "post-unknown", "none-unknown", "no-credentials"],
)
def test_unknown_or_missing_client_is_401(client, auth):
    data = {"grant_type": "authorization_code", "code": "x",
            "redirect_uri": "https://rp.example.com/cb", **auth.get("data", {})}
    response = client.post("/token", data=data, headers=auth.get("headers", {}))
    assert_error(response, "invalid_client", 401)


def test_confidential_client_cannot_skip_authentication(client, factory):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user)
    response = client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                           "redirect_uri": rp.redirect_uri,
                                           "client_id": rp.client_id})
    assert_error(response, "invalid_client", 401)
    assert exchange(client, rp, code).status_code in (200, 400)  # code may have been burnt


def test_client_must_use_its_registered_auth_method(client, factory):
    rp = factory.rp(auth_method="client_secret_basic", grant_types=("client_credentials",))
    response = client.post("/token", data={"grant_type": "client_credentials",
                                           "client_id": rp.client_id,
                                           "client_secret": rp.secret})
    assert_error(response, "invalid_client", 401)
    assert token_request(client, rp, grant_type="client_credentials").status_code == 200


def test_unsupported_grant_type(client, factory):
    rp = factory.rp()
    response = token_request(client, rp, grant_type="password", username="u", password="p")
    assert_error(response, "unsupported_grant_type")


def test_missing_grant_type(client, factory):
    rp = factory.rp()
    assert_error(token_request(client, rp), "unsupported_grant_type")


@pytest.mark.parametrize(
    ("registered", "grant_type"),
    [(("authorization_code",), "client_credentials"),
     (("authorization_code",), "refresh_token"),
     (("client_credentials",), "authorization_code")],
    ids=["code-only-asks-client-credentials", "code-only-asks-refresh",
         "cc-only-asks-code"],
)
def test_client_not_registered_for_a_grant_gets_unauthorized_client(client, factory,
                                                                    registered, grant_type):
    rp = factory.rp(grant_types=registered)
    data = {"grant_type": grant_type, "code": "x", "refresh_token": "x",
            "redirect_uri": rp.redirect_uri}
    assert_error(token_request(client, rp, **data), "unauthorized_client")


def test_code_grant_without_refresh_grant_issues_no_refresh_token(client, factory):
    user = factory.user()
    rp = factory.rp(grant_types=("authorization_code",))
    body = tokens_for(client, rp, user, scope="openid offline_access")
    assert "refresh_token" not in body


def test_token_endpoint_refuses_get(client):
    assert client.get("/token?grant_type=client_credentials").status_code == 405


# -- the ID token ---------------------------------------------------------------------------


def test_id_token_carries_every_required_and_product_claim(client, factory, clock):
    user = factory.user(email="claims@example.com")
    rp = factory.rp()
    code, _ = get_code(client, rp, user, nonce="nonce-42")
    body = exchange(client, rp, code).json
    header, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
    now = int(clock.now())
    assert header["alg"] == "RS256"
    assert header["kid"]
    assert claims["iss"] == ISSUER
    assert claims["sub"] == user.id
    assert claims["aud"] == rp.client_id
    assert now - 5 <= claims["iat"] <= now
    assert claims["exp"] > claims["iat"]
    assert claims["iat"] - 60 <= claims["auth_time"] <= claims["iat"]
    assert claims["nonce"] == "nonce-42"
    assert claims["acr"] == "urn:idp:loa:1"
    assert claims["amr"] == ["pwd"]
    assert isinstance(claims["sid"], str) and len(claims["sid"]) >= 16
    assert claims["contract_id"] == user.contract_id
    assert claims["role"] == "owner"
    assert claims["login_method"] == "password"
    # Scope claims come from userinfo, not the ID token, in the code flow (OIDC Core §5.4).
    assert "email" not in claims


def test_id_token_has_no_nonce_when_none_was_sent(client, factory):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user, nonce="")
    _, claims = verify_id_token(client, exchange(client, rp, code).json["id_token"],
                                audience=rp.client_id)
    assert "nonce" not in claims


def test_sid_is_the_same_for_two_clients_in_one_session(client, factory):
    user = factory.user()
    a, b = factory.rp(), factory.rp()
    sid_a = verify_id_token(client, tokens_for(client, a, user)["id_token"],
                            audience=a.client_id)[1]["sid"]
    sid_b = verify_id_token(client, tokens_for(client, b, user)["id_token"],
                            audience=b.client_id)[1]["sid"]
    assert sid_a == sid_b


def _half_hash(value: str, alg: str) -> str:
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_at_hash_matches_the_access_token_for_each_alg(client, factory, alg):
    user = factory.user()
    rp = factory.rp(id_token_signed_response_alg=alg)
    body = tokens_for(client, rp, user)
    header, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
    assert header["alg"] == alg
    assert claims["at_hash"] == _half_hash(body["access_token"], alg)
    assert claims["at_hash"] != _half_hash(body["access_token"] + "x", alg)


def test_claims_parameter_puts_id_token_claims_in_the_id_token(client, factory):
    user = factory.user(email="asked@example.com", name="Asked Person")
    rp = factory.rp()
    claims_request = {"id_token": {"email": {"essential": True}},
                      "userinfo": {"name": None, "phone_number": None}}
    body = tokens_for(client, rp, user, scope="openid", claims=json.dumps(claims_request))
    _, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
    assert claims["email"] == "asked@example.com"
    assert "name" not in claims
    info = client.get("/userinfo", headers=bearer(body["access_token"])).json
    assert info["name"] == "Asked Person"
    assert "email" not in info  # neither the email scope nor a userinfo request for it
    assert "phone_number" not in info  # requested, but the user has none: left out, not null


# -- client_credentials -------------------------------------------------------------------------


def test_client_credentials_issue_an_access_token_only(client, factory):
    rp = factory.rp(grant_types=("client_credentials",), scope="profile email")
    response = token_request(client, rp, grant_type="client_credentials", scope="profile")
    assert response.status_code == 200, response.json
    assert_no_store(response)
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "profile"
    assert "refresh_token" not in body
    assert "id_token" not in body
    intro = client.post("/introspect", data={"token": body["access_token"]}, headers=rp.basic)
    assert intro.json["active"] is True
    assert intro.json["client_id"] == rp.client_id
    assert intro.json["scope"] == "profile"
    assert "sub" not in intro.json
    # No user behind it: userinfo refuses it.
    assert client.get("/userinfo", headers=bearer(body["access_token"])).status_code == 401


@pytest.mark.parametrize("scope", ["openid", "offline_access", "profile admin", "phone"],
                         ids=["openid", "offline", "unregistered-extra", "unregistered"])
def test_client_credentials_refuse_user_or_unregistered_scopes(client, factory, scope):
    rp = factory.rp(grant_types=("client_credentials",), scope="profile email")
    response = token_request(client, rp, grant_type="client_credentials", scope=scope)
    assert_error(response, "invalid_scope")


def test_public_client_cannot_use_client_credentials(client, factory):
    rp = factory.rp(auth_method="none", grant_types=("client_credentials",))
    response = client.post("/token", data={"grant_type": "client_credentials",
                                           "client_id": rp.client_id})
    assert_error(response, "invalid_client", 401)
