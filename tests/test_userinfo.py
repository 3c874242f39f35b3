"""UserInfo endpoint (OIDC Core §5.3, §5.4, §5.5) with bearer tokens (RFC 6750 §2, §3)."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import ISSUER, bearer, tokens_for, verify_id_token

REALM = f'Bearer realm="{ISSUER}"'


def challenge_params(response) -> dict[str, str]:
    value = response.headers["WWW-Authenticate"]
    assert value.startswith("Bearer "), value
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


@pytest.fixture
def user(factory):
    user = factory.user(email="info@example.com", name="情報 花子")
    with factory.app.app_context():
        from idp.db import db
        from idp.models import User

        db.session.get(User, user.id).phone_number = "+81312345678"
        db.session.commit()
    return user


@pytest.fixture
def token(client, user, rp) -> str:
    return tokens_for(client, rp, user, scope="openid profile email phone")["access_token"]


@pytest.mark.parametrize(
    ("method", "where"),
    [("GET", "header"), ("POST", "header"), ("POST", "body")],
    ids=["get-header", "post-header", "post-form-body"],
)
def test_userinfo_accepts_the_token_by_header_or_form_body(client, user, token, method, where):
    if where == "header":
        response = client.open("/userinfo", method=method, headers=bearer(token))
    else:
        response = client.post("/userinfo", data={"access_token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json["sub"] == user.id
    assert response.json["email"] == "info@example.com"


def test_token_in_header_and_body_at_once_is_invalid_request(client, token):
    response = client.post("/userinfo", headers=bearer(token), data={"access_token": token})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert challenge_params(response)["error"] == "invalid_request"


def test_token_in_the_query_string_is_refused(client, token):
    response = client.get("/userinfo", query_string={"access_token": token})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["no-credentials", "other-scheme"],
)
def test_missing_bearer_token_is_a_bare_401_challenge(client, headers):
    response = client.get("/userinfo", headers=headers)
    assert response.status_code == 401
    # RFC 6750 §3: no error code when the request carried no bearer credential at all.
    assert response.headers["WWW-Authenticate"] == REALM
    assert "error" not in response.json


def test_empty_bearer_header_is_invalid_request(client):
    response = client.get("/userinfo", headers={"Authorization": "Bearer "})
    assert response.status_code == 400
    assert challenge_params(response)["error"] == "invalid_request"


def test_unknown_token_is_401_invalid_token(client):
    response = client.get("/userinfo", headers=bearer("forged-token"))
    assert response.status_code == 401
    params = challenge_params(response)
    assert params["realm"] == ISSUER
    assert params["error"] == "invalid_token"
    assert response.json["error"] == "invalid_token"


def test_expired_token_is_401_invalid_token(client, token, clock, settings):
    clock.advance(settings.access_token_ttl + 1)
    response = client.get("/userinfo", headers=bearer(token))
    assert response.status_code == 401
    assert challenge_params(response)["error"] == "invalid_token"


def test_token_of_a_disabled_user_is_401(client, factory, user, token):
    with factory.app.app_context():
        from idp.db import db
        from idp.models import User

        db.session.get(User, user.id).status = "disabled"
        db.session.commit()
    response = client.get("/userinfo", headers=bearer(token))
    assert response.status_code == 401
    assert challenge_params(response)["error"] == "invalid_token"


def test_token_without_openid_is_403_insufficient_scope(client, user, rp):
    body = tokens_for(client, rp, user, scope="profile email")
    assert "id_token" not in body
    response = client.get("/userinfo", headers=bearer(body["access_token"]))
    assert response.status_code == 403
    assert challenge_params(response)["error"] == "insufficient_scope"


TENANT = {"contract_id", "role", "login_method"}


@pytest.mark.parametrize(
    ("scope", "present", "absent"),
    [
        ("openid", {"sub"} | TENANT, {"name", "email", "phone_number"}),
        ("openid profile", {"name", "preferred_username", "updated_at"},
         {"email", "phone_number"}),
        ("openid email", {"email", "email_verified"}, {"name", "phone_number"}),
        ("openid phone", {"phone_number", "phone_number_verified"}, {"name", "email"}),
    ],
    ids=["openid", "profile", "email", "phone"],
)
def test_claims_follow_the_granted_scopes(client, user, rp, scope, present, absent):
    body = tokens_for(client, rp, user, scope=scope)
    info = client.get("/userinfo", headers=bearer(body["access_token"])).json
    assert present <= set(info), set(info)
    assert absent.isdisjoint(info), set(info)


def test_claim_values_are_the_users(client, user, token):
    info = client.get("/userinfo", headers=bearer(token)).json
    assert info["name"] == "情報 花子"
    assert info["email"] == "info@example.com"
    assert info["email_verified"] is True
    assert info["phone_number"] == "+81312345678"
    assert info["contract_id"] == user.contract_id
    assert info["role"] == "owner"
    assert info["login_method"] == "password"
    assert None not in info.values()


def test_claims_parameter_releases_single_userinfo_claims(client, user, rp):
    claims = json.dumps({"userinfo": {"email": {"essential": True}, "name": None}})
    body = tokens_for(client, rp, user, scope="openid", claims=claims)
    info = client.get("/userinfo", headers=bearer(body["access_token"])).json
    assert info["email"] == "info@example.com"
    assert info["name"] == "情報 花子"
    assert "phone_number" not in info


def test_claims_parameter_survives_refresh(client, user, rp):
    from tests.helpers import refresh

    claims = json.dumps({"userinfo": {"email": None}})
    body = tokens_for(client, rp, user, scope="openid offline_access", claims=claims)
    renewed = refresh(client, rp, body["refresh_token"]).json
    info = client.get("/userinfo", headers=bearer(renewed["access_token"])).json
    assert info["email"] == "info@example.com"


def test_userinfo_sub_equals_the_id_token_sub(client, user, rp):
    body = tokens_for(client, rp, user)
    _, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
    info = client.get("/userinfo", headers=bearer(body["access_token"])).json
    assert info["sub"] == claims["sub"] == user.id


def test_pairwise_sub_is_consistent_and_differs_per_sector(client, factory, user):
    a = factory.rp(subject_type="pairwise", sector_identifier="https://a.example.com")
    b = factory.rp(subject_type="pairwise", sector_identifier="https://b.example.com")
    subs = []
    for rp in (a, b):
        body = tokens_for(client, rp, user)
        _, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
        info = client.get("/userinfo", headers=bearer(body["access_token"])).json
        assert info["sub"] == claims["sub"] != user.id
        subs.append(info["sub"])
    assert subs[0] != subs[1]


def test_revoked_token_is_refused(client, rp, token):
    assert client.post("/revoke", data={"token": token}, headers=rp.basic).status_code == 200
    response = client.get("/userinfo", headers=bearer(token))
    assert response.status_code == 401
    assert challenge_params(response)["error"] == "invalid_token"
