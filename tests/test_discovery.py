"""Discovery (OIDC Discovery 1.0 §3, §4; RFC 8414) and JWKS: present, and truthful."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.helpers import (
    ISSUER,
    authorize,
    bearer,
    client_assertion,
    exchange,
    get_code,
    new_key,
    pkce_pair,
    private_key_jwt_rp,
    query_of,
    tokens_for,
    verify_id_token,
)

REQUIRED = (
    "issuer", "authorization_endpoint", "token_endpoint", "jwks_uri",
    "response_types_supported", "subject_types_supported",
    "id_token_signing_alg_values_supported",
)
RECOMMENDED = ("userinfo_endpoint", "registration_endpoint", "scopes_supported",
               "claims_supported")
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


@pytest.fixture
def meta(client) -> dict:
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.json


def test_discovery_has_every_required_and_recommended_field(meta):
    missing = [name for name in REQUIRED + RECOMMENDED if name not in meta]
    assert missing == []
    assert "openid" in meta["scopes_supported"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    assert "none" not in meta["id_token_signing_alg_values_supported"]
    assert "none" not in meta["token_endpoint_auth_signing_alg_values_supported"]
    # Claim values exist in one language only: claims_locales would be an empty promise.
    assert "claims_locales_supported" not in meta


def test_discovery_issuer_is_exactly_the_configured_issuer(meta, settings):
    # OIDC Discovery §4.3: the RP compares this with the URL it fetched, character by character.
    assert meta["issuer"] == settings.issuer == ISSUER
    for name, value in meta.items():
        if name.endswith(("_endpoint", "_uri")):
            assert value.startswith(ISSUER + "/"), name


def test_rfc8414_metadata_is_the_same_document(client, meta):
    other = client.get("/.well-known/oauth-authorization-server")
    assert other.status_code == 200
    assert other.json == meta


@pytest.mark.parametrize(
    ("field", "method", "statuses"),
    [
        ("authorization_endpoint", "GET", {400}),  # error page: no client_id
        ("token_endpoint", "POST", {400, 401}),
        ("userinfo_endpoint", "GET", {401}),
        ("jwks_uri", "GET", {200}),
        ("revocation_endpoint", "POST", {401}),
        ("introspection_endpoint", "POST", {401}),
        ("end_session_endpoint", "GET", {200}),
        ("registration_endpoint", "POST", {400, 401}),  # no initial access token
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_every_advertised_endpoint_answers(client, meta, field, method, statuses):
    path = urlsplit(meta[field]).path
    response = client.open(path, method=method)
    assert response.status_code in statuses, (path, response.status_code)
    if field in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert "error" in response.json


def test_advertised_grant_types_are_the_ones_the_token_endpoint_knows(client, factory, meta):
    rp = factory.rp(grant_types=("authorization_code", "refresh_token", "client_credentials"))
    for grant_type in meta["grant_types_supported"]:
        response = client.post("/token", data={"grant_type": grant_type}, headers=rp.basic)
        assert response.json.get("error") != "unsupported_grant_type", grant_type
    for grant_type in ("password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"):
        assert grant_type not in meta["grant_types_supported"]
        response = client.post("/token", data={"grant_type": grant_type}, headers=rp.basic)
        assert response.json["error"] == "unsupported_grant_type", grant_type


@pytest.mark.parametrize(
    "method", ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
)
def test_each_advertised_token_auth_method_redeems_a_code(client, factory, meta, method):
    assert method in meta["token_endpoint_auth_methods_supported"]
    user = factory.user()
    rp = private_key_jwt_rp(factory) if method == "private_key_jwt" else factory.rp(
        auth_method=method)
    body = tokens_for(client, rp, user)
    assert client.get("/userinfo", headers=bearer(body["access_token"])).status_code == 200


def test_advertised_token_auth_methods_are_exactly_the_tested_ones(meta):
    assert sorted(meta["token_endpoint_auth_methods_supported"]) == sorted(
        ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"])
    # A public client cannot introspect (RFC 7662 §2.1: the caller is authorized).
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_each_advertised_id_token_alg_signs_id_tokens(client, factory, meta, alg):
    assert alg in meta["id_token_signing_alg_values_supported"]
    user = factory.user()
    rp = factory.rp(id_token_signed_response_alg=alg)
    body = tokens_for(client, rp, user)
    header, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
    assert header["alg"] == alg
    assert claims["sub"] == user.id


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
@pytest.mark.parametrize(
    ("path", "field"),
    [("/token", "token_endpoint_auth_signing_alg_values_supported"),
     ("/introspect", "introspection_endpoint_auth_signing_alg_values_supported"),
     ("/revoke", "revocation_endpoint_auth_signing_alg_values_supported")],
    ids=["token", "introspect", "revoke"],
)
def test_each_advertised_assertion_alg_authenticates_a_client(client, factory, meta, alg,
                                                              path, field):
    assert alg in meta[field]
    rp = private_key_jwt_rp(factory, alg=alg, grant_types=("client_credentials",))
    assertion = client_assertion(rp.client_id, rp.key, alg=alg, audience=ISSUER + path)
    data = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}
    if path == "/token":
        data["grant_type"] = "client_credentials"
    else:
        data["token"] = "not-a-token"
    response = client.post(path, data=data)
    assert response.status_code == 200, response.json


def test_an_unadvertised_assertion_alg_is_refused(client, factory):
    # HS256 with a key the client could put in its JWKS is not private_key_jwt.
    from joserfc import jwt
    from joserfc.jwk import OctKey

    secret = OctKey.generate_key(256)
    rp = factory.rp(auth_method="private_key_jwt", grant_types=("client_credentials",),
                    jwks={"keys": [secret.as_dict(private=True) | {"kid": "hs"}]})
    import time

    t = int(time.time())
    assertion = jwt.encode({"alg": "HS256", "kid": "hs"},
                           {"iss": rp.client_id, "sub": rp.client_id, "aud": ISSUER + "/token",
                            "iat": t, "exp": t + 60, "jti": "j1"}, secret, algorithms=["HS256"])
    response = client.post("/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize(("mode", "accepted"), [("query", True), ("form_post", True),
                                                ("fragment", False)])
def test_response_modes_match_what_the_authorization_endpoint_accepts(client, factory, meta,
                                                                      mode, accepted):
    assert (mode in meta["response_modes_supported"]) is accepted
    rp = factory.rp()
    response = authorize(client, rp, response_mode=mode)
    if accepted:
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]
    else:
        assert query_of(response.headers["Location"])["error"] == "invalid_request"


@pytest.mark.parametrize(("response_type", "accepted"),
                         [("code", True), ("token", False), ("id_token", False),
                          ("code id_token", False)])
def test_response_types_match_what_the_authorization_endpoint_accepts(
        client, factory, meta, response_type, accepted):
    assert (response_type in meta["response_types_supported"]) is accepted
    response = authorize(client, factory.rp(), response_type=response_type)
    location = response.headers["Location"]
    if accepted:
        assert "/login" in location
    else:
        assert query_of(location)["error"] == "unsupported_response_type"


@pytest.mark.parametrize(("method", "accepted"), [("S256", True), ("plain", False)])
def test_code_challenge_methods_match_what_is_accepted(client, factory, meta, method,
                                                       accepted):
    assert (method in meta["code_challenge_methods_supported"]) is accepted
    verifier, challenge = pkce_pair()
    response = authorize(client, factory.rp(auth_method="none"),
                         code_challenge=challenge if method == "S256" else verifier,
                         code_challenge_method=method)
    location = response.headers["Location"]
    assert ("/login" in location) is accepted


def test_every_advertised_scope_and_prompt_is_accepted(client, factory, meta):
    user = factory.user()
    rp = factory.rp()
    code, _ = get_code(client, rp, user, scope=" ".join(meta["scopes_supported"]))
    body = exchange(client, rp, code).json
    assert set(body["scope"].split()) == set(meta["scopes_supported"])
    for prompt in meta["prompt_values_supported"]:
        response = authorize(client, rp, prompt=prompt)
        assert query_of(response.headers["Location"]).get("error") != "invalid_request", prompt


def test_released_claims_are_all_advertised(client, factory, meta):
    user = factory.user()
    with factory.app.app_context():
        from idp.db import db
        from idp.models import User

        db.session.get(User, user.id).phone_number = "+81312345678"
        db.session.commit()
    rp = factory.rp()
    body = tokens_for(client, rp, user, scope="openid profile email phone")
    _, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
    info = client.get("/userinfo", headers=bearer(body["access_token"])).json
    released = set(claims) | set(info)
    assert "phone_number" in released
    assert released - set(meta["claims_supported"]) == set()


@pytest.mark.parametrize(("locale", "word"), [("ja", "ログイン"), ("en", "Sign in")])
def test_advertised_ui_locales_translate_the_login_page(client, factory, meta, locale, word):
    assert locale in meta["ui_locales_supported"]
    response = authorize(client, factory.rp(), ui_locales=locale)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'lang="{locale}"' in page
    assert word in page


def test_jwks_publishes_rs256_signing_keys_without_private_parts(client):
    response = client.get("/jwks.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    keys = response.json["keys"]
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids)), "kids must be unique"
    rsa = [k for k in keys if k["alg"] == "RS256"]
    assert rsa, "OIDC requires RS256"
    for key in keys:
        assert {"kid", "use", "alg", "kty"} <= set(key)
        assert key["use"] == "sig"
        assert PRIVATE_JWK_MEMBERS.isdisjoint(key), key["kid"]
    assert all(k["kty"] == "RSA" and k["n"] and k["e"] for k in rsa)


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/jwks.json"],
                         ids=["discovery", "jwks"])
def test_documents_answer_304_to_a_matching_if_none_match(client, path):
    first = client.get(path)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    stale = client.get(path, headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200
    assert stale.data == first.data


@pytest.mark.parametrize(("path", "max_age"),
                         [("/.well-known/openid-configuration", 3600), ("/jwks.json", None)],
                         ids=["discovery", "jwks"])
def test_documents_are_cacheable_for_a_bounded_time(client, settings, path, max_age):
    cache = client.get(path).headers["Cache-Control"]
    directives = {}
    for part in cache.split(","):
        name, _, value = part.strip().partition("=")
        directives[name] = value
    assert "public" in directives
    assert int(directives["max-age"]) == (settings.jwks_max_age if max_age is None else max_age)


def test_jwks_changes_its_etag_when_a_key_is_added(client, app, settings):
    before = client.get("/jwks.json")
    from idp.keys import KeyStore

    KeyStore(settings.keys_dir, settings.keys_kek or settings.secret_key).rotate(
        now=10**9, next_min_age=0, force=True)
    app.extensions["idp.keys"].refresh(force=True)
    after = client.get("/jwks.json", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != before.headers["ETag"]
    assert len(after.json["keys"]) > len(before.json["keys"])


def test_id_token_kid_is_published(client, factory):
    user = factory.user()
    rp = factory.rp()
    body = tokens_for(client, rp, user)
    header, _ = verify_id_token(client, body["id_token"], audience=rp.client_id)
    kids = {k["kid"] for k in client.get("/jwks.json").json["keys"]}
    assert header["kid"] in kids


def test_new_key_is_unrelated_to_the_published_ones(client):
    # Guards verify_id_token: a key that is not published must not verify.
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    key = new_key("RS256")
    token = jwt.encode({"alg": "RS256", "kid": "x"}, {"sub": "a"}, key, algorithms=["RS256"])
    jwks = KeySet.import_key_set(client.get("/jwks.json").json)
    with pytest.raises((JoseError, ValueError)):
        jwt.decode(token, jwks, algorithms=["RS256"])
