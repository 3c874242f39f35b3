"""The authorization code flow end to end through the test client."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers import exchange, get_code, pkce_pair


def verify_id_token(client, token: str, audience: str) -> dict:
    jwks = KeySet.import_key_set(client.get("/jwks.json").json)
    claims = jwt.decode(token, jwks, algorithms=["RS256", "ES256", "EdDSA"]).claims
    assert claims["aud"] == audience
    return claims


def test_code_flow_with_pkce_issues_verified_id_token(client, factory):
    user = factory.user(email="owner@example.com")
    rp = factory.rp()
    verifier, _ = pkce_pair()
    code, query = get_code(client, rp, user, verifier=verifier, nonce="n-123")
    assert query["iss"] == "http://localhost"
    response = exchange(client, rp, code, verifier=verifier)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["token_type"] == "Bearer"
    claims = verify_id_token(client, body["id_token"], rp.client_id)
    assert claims["nonce"] == "n-123"
    assert claims["sub"] == user.id
    assert claims["amr"] == ["pwd"]
    assert claims["contract_id"] == user.contract_id
    assert claims["role"] == "owner"
    assert claims["login_method"] == "password"
    assert {"auth_time", "sid", "at_hash", "acr", "iat", "exp"} <= set(claims)
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status_code == 200
    assert info.json["sub"] == user.id
    assert info.json["email"] == "owner@example.com"
