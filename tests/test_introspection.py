"""Token introspection (RFC 7662 §2)."""

from __future__ import annotations

import pytest

from tests.helpers import (
    ISSUER,
    endpoint_request,
    refresh,
    tokens_for,
    verify_id_token,
)

INACTIVE = {"active": False}


@pytest.fixture
def issued(client, user, rp) -> dict:
    return tokens_for(client, rp, user, scope="openid profile offline_access")


def introspect(client, rp, token: str, hint: str | None = None):
    data = {"token": token}
    if hint:
        data["token_type_hint"] = hint
    response = endpoint_request(client, rp, "/introspect", **data)
    if response.status_code == 200:
        assert response.mimetype == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
    return response


def test_active_access_token_is_described(client, user, rp, issued, clock):
    response = introspect(client, rp, issued["access_token"])
    assert response.status_code == 200
    body = response.json
    now = int(clock.now())
    assert body["active"] is True
    assert set(body["scope"].split()) == {"openid", "profile", "offline_access"}
    assert body["client_id"] == rp.client_id
    assert body["token_type"] == "Bearer"
    assert body["sub"] == user.id
    assert body["aud"] == rp.client_id
    assert body["iss"] == ISSUER
    assert now - 5 <= body["iat"] <= now
    assert body["exp"] == body["iat"] + issued["expires_in"]


def test_active_refresh_token_is_described(client, user, rp, issued):
    body = introspect(client, rp, issued["refresh_token"], "refresh_token").json
    assert body["active"] is True
    assert body["client_id"] == rp.client_id
    assert body["sub"] == user.id
    assert body["exp"] > body["iat"]


@pytest.mark.parametrize("hint", ["refresh_token", "bogus"], ids=["wrong-hint", "unknown-hint"])
def test_hint_does_not_hide_the_token(client, rp, issued, hint):
    assert introspect(client, rp, issued["access_token"], hint).json["active"] is True


def test_revoked_access_token_is_inactive(client, rp, issued):
    endpoint_request(client, rp, "/revoke", token=issued["access_token"])
    assert introspect(client, rp, issued["access_token"]).json == INACTIVE


def test_revoked_refresh_token_is_inactive(client, rp, issued):
    endpoint_request(client, rp, "/revoke", token=issued["refresh_token"])
    assert introspect(client, rp, issued["refresh_token"]).json == INACTIVE
    assert introspect(client, rp, issued["access_token"]).json == INACTIVE


def test_rotated_refresh_token_is_inactive(client, rp, issued):
    rotated = refresh(client, rp, issued["refresh_token"]).json
    assert introspect(client, rp, issued["refresh_token"]).json == INACTIVE
    assert introspect(client, rp, rotated["refresh_token"]).json["active"] is True


def test_expired_access_token_is_inactive(client, rp, issued, clock, settings):
    clock.advance(settings.access_token_ttl + 1)
    assert introspect(client, rp, issued["access_token"]).json == INACTIVE


def test_expired_refresh_token_is_inactive(client, rp, issued, clock, settings):
    clock.advance(settings.refresh_token_ttl + 1)
    assert introspect(client, rp, issued["refresh_token"]).json == INACTIVE


def test_unknown_token_is_inactive(client, rp):
    assert introspect(client, rp, "never-issued").json == INACTIVE


def test_unauthenticated_introspection_is_401(client, issued):
    response = client.post("/introspect", data={"token": issued["access_token"]})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"
    assert "active" not in response.json


def test_public_client_cannot_introspect(client, factory, user):
    rp = factory.rp(auth_method="none")
    body = tokens_for(client, rp, user)
    response = client.post("/introspect", data={"token": body["access_token"],
                                                "client_id": rp.client_id})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_client_cannot_introspect_another_clients_token(client, factory, issued):
    other = factory.rp()
    assert introspect(client, other, issued["access_token"]).json == INACTIVE
    assert introspect(client, other, issued["refresh_token"]).json == INACTIVE


def test_registered_resource_server_may_introspect_any_token(client, factory, rp, issued):
    resource_server = factory.rp(introspection=True, grant_types=("client_credentials",))
    body = introspect(client, resource_server, issued["access_token"]).json
    assert body["active"] is True
    assert body["client_id"] == rp.client_id


def test_private_key_jwt_client_introspects_with_an_assertion(client, factory, user):
    from tests.helpers import private_key_jwt_rp

    rp = private_key_jwt_rp(factory)
    body = tokens_for(client, rp, user)
    assert introspect(client, rp, body["access_token"]).json["active"] is True


def test_introspected_sub_is_the_pairwise_sub_of_the_id_token(client, factory, user):
    rp = factory.rp(subject_type="pairwise", sector_identifier="https://rp.example.com")
    body = tokens_for(client, rp, user)
    _, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
    assert introspect(client, rp, body["access_token"]).json["sub"] == claims["sub"] != user.id


def test_missing_token_parameter_is_invalid_request(client, rp):
    response = endpoint_request(client, rp, "/introspect")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_tokens_of_a_deleted_client_are_inactive(client, app, factory):
    """A client_credentials token has no refresh family to revoke; deletion alone ends it."""
    from idp.clients import delete_client
    from idp.db import db
    from idp.models import Client
    from tests.helpers import token_request

    machine = factory.rp(grant_types=("client_credentials",))
    token = token_request(client, machine, grant_type="client_credentials").json["access_token"]
    resource_server = factory.rp(introspection=True, grant_types=("client_credentials",))
    assert introspect(client, resource_server, token).json["active"] is True
    with app.app_context():
        delete_client(db.session.get(Client, machine.client_id), actor="test")
    assert introspect(client, resource_server, token).json == INACTIVE
