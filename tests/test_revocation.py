"""Token revocation (RFC 7009 §2)."""

from __future__ import annotations

import pytest

from tests.helpers import bearer, endpoint_request, refresh, tokens_for

HINTS = [None, "access_token", "refresh_token", "id_token", "bogus"]
HINT_IDS = ["no-hint", "access-hint", "refresh-hint", "unknown-hint-id-token",
            "unknown-hint-bogus"]


@pytest.fixture
def issued(client, user, rp) -> dict:
    return tokens_for(client, rp, user, scope="openid offline_access")


def revoke(client, rp, token: str, hint: str | None = None):
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    return endpoint_request(client, rp, "/revoke", **data)


def userinfo_status(client, token: str) -> int:
    return client.get("/userinfo", headers=bearer(token)).status_code


@pytest.mark.parametrize("hint", HINTS, ids=HINT_IDS)
def test_access_token_is_revoked_whatever_the_hint(client, rp, issued, hint):
    assert userinfo_status(client, issued["access_token"]) == 200
    response = revoke(client, rp, issued["access_token"], hint)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert userinfo_status(client, issued["access_token"]) == 401


@pytest.mark.parametrize("hint", HINTS, ids=HINT_IDS)
def test_refresh_token_is_revoked_whatever_the_hint(client, rp, issued, hint):
    response = revoke(client, rp, issued["refresh_token"], hint)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert refresh(client, rp, issued["refresh_token"]).json["error"] == "invalid_grant"


def test_revoking_a_refresh_token_revokes_its_familys_access_tokens(client, rp, issued):
    rotated = refresh(client, rp, issued["refresh_token"]).json
    assert revoke(client, rp, rotated["refresh_token"]).status_code == 200
    assert refresh(client, rp, rotated["refresh_token"]).json["error"] == "invalid_grant"
    for body in (issued, rotated):
        assert userinfo_status(client, body["access_token"]) == 401


def test_revoking_an_old_rotated_refresh_token_still_ends_the_family(client, rp, issued):
    rotated = refresh(client, rp, issued["refresh_token"]).json
    assert revoke(client, rp, issued["refresh_token"]).status_code == 200
    assert refresh(client, rp, rotated["refresh_token"]).status_code == 400
    assert userinfo_status(client, rotated["access_token"]) == 401


def test_revoking_one_family_leaves_the_others(client, user, rp, issued):
    other = tokens_for(client, rp, user, scope="openid offline_access")
    assert revoke(client, rp, issued["refresh_token"]).status_code == 200
    assert userinfo_status(client, other["access_token"]) == 200
    assert refresh(client, rp, other["refresh_token"]).status_code == 200


@pytest.mark.parametrize("token", ["never-issued", "x" * 500], ids=["unknown", "long"])
def test_unknown_token_is_answered_200(client, rp, token):
    response = revoke(client, rp, token)
    assert response.status_code == 200


def test_already_revoked_token_is_answered_200(client, rp, issued):
    assert revoke(client, rp, issued["access_token"]).status_code == 200
    assert revoke(client, rp, issued["access_token"]).status_code == 200


def test_another_clients_token_is_not_revoked(client, factory, rp, issued):
    other = factory.rp()
    for token in (issued["access_token"], issued["refresh_token"]):
        response = revoke(client, other, token)
        assert response.status_code == 400
        assert response.json["error"] == "invalid_grant"
    assert userinfo_status(client, issued["access_token"]) == 200
    assert refresh(client, rp, issued["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "auth",
    [{}, {"headers": {"Authorization": "Basic Z2hvc3Q6c2VjcmV0"}},
     {"wrong_secret": True}],
    ids=["no-auth", "unknown-client", "wrong-secret"],
)
def test_revocation_needs_client_authentication(client, rp, issued, auth):
    headers = auth.get("headers", {})
    if auth.get("wrong_secret"):
        import base64

        headers = {"Authorization": "Basic " + base64.b64encode(
            f"{rp.client_id}:wrong".encode()).decode()}
    response = client.post("/revoke", data={"token": issued["access_token"]}, headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert "WWW-Authenticate" in response.headers
    assert userinfo_status(client, issued["access_token"]) == 200


def test_missing_token_parameter_is_invalid_request(client, rp):
    response = endpoint_request(client, rp, "/revoke")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_public_client_revokes_its_own_token_with_its_client_id(client, factory, user):
    rp = factory.rp(auth_method="none")
    body = tokens_for(client, rp, user, scope="openid offline_access")
    response = client.post("/revoke", data={"token": body["refresh_token"],
                                            "client_id": rp.client_id})
    assert response.status_code == 200
    assert userinfo_status(client, body["access_token"]) == 401


def test_private_key_jwt_client_revokes_with_an_assertion(client, factory, user):
    from tests.helpers import private_key_jwt_rp

    rp = private_key_jwt_rp(factory)
    body = tokens_for(client, rp, user)
    assert revoke(client, rp, body["access_token"]).status_code == 200
    assert userinfo_status(client, body["access_token"]) == 401


def test_revocation_endpoint_is_post_only(client):
    assert client.get("/revoke?token=x").status_code == 405
