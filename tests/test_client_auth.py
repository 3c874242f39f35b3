"""Client authentication with ``private_key_jwt`` (OIDC Core §9, RFC 7523 §2.2, §3)."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt

from tests.helpers import (
    ISSUER,
    client_assertion,
    exchange,
    get_code,
    new_key,
    private_key_jwt_rp,
)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def cc_with(client, assertion: str, *, assertion_type: str = ASSERTION_TYPE):
    return client.post("/token", data={"grant_type": "client_credentials",
                                       "client_assertion_type": assertion_type,
                                       "client_assertion": assertion})


def assert_invalid_client(response) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"]
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture
def rp(factory):
    return private_key_jwt_rp(factory, grant_types=("client_credentials",), scope="profile")


def test_valid_assertion_authenticates_the_client(client, rp):
    response = cc_with(client, client_assertion(rp.client_id, rp.key))
    assert response.status_code == 200, response.json
    assert response.json["access_token"]


@pytest.mark.parametrize("audience", [ISSUER, ISSUER + "/token"], ids=["issuer", "token-url"])
def test_issuer_and_token_endpoint_are_both_valid_audiences(client, rp, audience):
    response = cc_with(client, client_assertion(rp.client_id, rp.key, audience=audience))
    assert response.status_code == 200, response.json


def test_private_key_jwt_client_redeems_a_code(client, factory):
    user = factory.user()
    rp = private_key_jwt_rp(factory)
    code, _ = get_code(client, rp, user)
    response = exchange(client, rp, code)
    assert response.status_code == 200, response.json
    assert response.json["id_token"]


def test_replayed_assertion_is_refused(client, rp):
    assertion = client_assertion(rp.client_id, rp.key)
    assert cc_with(client, assertion).status_code == 200
    assert_invalid_client(cc_with(client, assertion))


def test_jti_is_single_use_even_in_a_new_assertion(client, rp):
    assert cc_with(client, client_assertion(rp.client_id, rp.key, jti="same")).status_code == 200
    assert_invalid_client(cc_with(client, client_assertion(rp.client_id, rp.key, jti="same")))


@pytest.mark.parametrize(
    "make",
    [
        lambda rp: client_assertion(rp.client_id, rp.key, audience="https://other.example"),
        lambda rp: client_assertion(rp.client_id, rp.key, audience=ISSUER + "/userinfo"),
        lambda rp: client_assertion(rp.client_id, rp.key, lifetime=-300),
        lambda rp: client_assertion(rp.client_id, new_key("RS256")),
        lambda rp: client_assertion(rp.client_id, new_key("ES256"), alg="ES256"),
        lambda rp: client_assertion(rp.client_id, rp.key, issuer="someone-else"),
        lambda rp: client_assertion("cl_unknown", rp.key),
        lambda rp: client_assertion(rp.client_id, rp.key)[:-4] + "AAAA",
        lambda rp: "not-a-jwt",
    ],
    ids=["wrong-aud", "aud-of-another-endpoint", "expired", "wrong-key", "wrong-key-alg",
         "iss-not-sub", "unknown-client", "bad-signature", "garbage"],
)
def test_bad_assertion_is_401_invalid_client(client, rp, make):
    assert_invalid_client(cc_with(client, make(rp)))


def _claims(rp, **changes):
    t = int(time.time())
    claims = {"iss": rp.client_id, "sub": rp.client_id, "aud": ISSUER + "/token",
              "iat": t, "exp": t + 60, "jti": f"j-{t}-{id(changes)}"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize("missing", ["jti", "exp", "aud", "sub"])
def test_assertion_missing_a_required_claim_is_refused(client, rp, missing):
    token = jwt.encode({"alg": "RS256", "kid": rp.key.thumbprint()},
                       _claims(rp, **{missing: None}), rp.key, algorithms=["RS256"])
    assert_invalid_client(cc_with(client, token))


def test_unsigned_assertion_is_refused(client, rp):
    import base64
    import json

    def b64(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    token = b64({"alg": "none"}) + "." + b64(_claims(rp)) + "."
    assert_invalid_client(cc_with(client, token))


def test_wrong_assertion_type_is_not_authentication(client, rp):
    response = cc_with(client, client_assertion(rp.client_id, rp.key),
                       assertion_type="urn:example:other")
    assert_invalid_client(response)


def test_secret_client_cannot_switch_to_an_assertion(client, factory):
    # Registered for client_secret_basic, with a JWKS it might also have published.
    key = new_key("RS256")
    from tests.helpers import public_jwks

    rp = factory.rp(grant_types=("client_credentials",), jwks=public_jwks(key))
    assert_invalid_client(cc_with(client, client_assertion(rp.client_id, key)))


def test_key_of_another_client_does_not_authenticate(client, factory, rp):
    other = private_key_jwt_rp(factory, grant_types=("client_credentials",))
    assert_invalid_client(cc_with(client, client_assertion(rp.client_id, other.key)))
