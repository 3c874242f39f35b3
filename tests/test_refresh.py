"""Refresh tokens (RFC 6749 §6, OIDC Core §11, §12; RFC 9700 §4.14.2: rotation)."""

from __future__ import annotations

import threading

import pytest

from tests.helpers import bearer, refresh, tokens_for, verify_id_token

OFFLINE = "openid profile email offline_access"


def assert_invalid_grant(response) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_grant"
    assert response.headers["Cache-Control"] == "no-store"


def userinfo_status(client, access_token: str) -> int:
    return client.get("/userinfo", headers=bearer(access_token)).status_code


def test_refresh_token_only_with_offline_access(client, user, rp):
    assert "refresh_token" not in tokens_for(client, rp, user, scope="openid profile")
    assert tokens_for(client, rp, user, scope=OFFLINE)["refresh_token"]


def test_refresh_rotates_the_refresh_token_and_refuses_the_old_one(client, user, rp):
    first = tokens_for(client, rp, user, scope=OFFLINE)
    response = refresh(client, rp, first["refresh_token"])
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    second = response.json
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert userinfo_status(client, second["access_token"]) == 200
    third = refresh(client, rp, second["refresh_token"]).json
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


def test_replayed_refresh_token_revokes_the_whole_family(client, user, rp):
    first = tokens_for(client, rp, user, scope=OFFLINE)
    second = refresh(client, rp, first["refresh_token"]).json
    third = refresh(client, rp, second["refresh_token"]).json
    assert userinfo_status(client, third["access_token"]) == 200

    assert_invalid_grant(refresh(client, rp, first["refresh_token"]))

    # The newest refresh token and every access token of the family are dead too.
    assert_invalid_grant(refresh(client, rp, third["refresh_token"]))
    for body in (first, second, third):
        assert userinfo_status(client, body["access_token"]) == 401


def test_replay_does_not_touch_other_families(client, user, rp):
    a = tokens_for(client, rp, user, scope=OFFLINE)
    b = tokens_for(client, rp, user, scope=OFFLINE)
    refresh(client, rp, a["refresh_token"])
    assert_invalid_grant(refresh(client, rp, a["refresh_token"]))
    assert refresh(client, rp, b["refresh_token"]).status_code == 200


def test_refreshed_id_token_keeps_the_authentication_and_drops_the_nonce(client, user, rp,
                                                                        clock):
    first = tokens_for(client, rp, user, scope=OFFLINE, nonce="n-once")
    _, original = verify_id_token(client, first["id_token"], audience=rp.client_id)
    assert original["nonce"] == "n-once"
    clock.advance(120)
    body = refresh(client, rp, first["refresh_token"]).json
    _, claims = verify_id_token(client, body["id_token"], audience=rp.client_id)
    for name in ("iss", "sub", "aud", "auth_time", "acr", "amr", "sid", "contract_id"):
        assert claims[name] == original[name], name
    assert claims["iat"] >= original["iat"] + 120
    assert "nonce" not in claims
    assert claims["at_hash"] != original["at_hash"]


def test_refresh_may_narrow_the_scope_but_the_refresh_token_keeps_its_own(client, user, rp):
    first = tokens_for(client, rp, user, scope=OFFLINE)
    narrow = refresh(client, rp, first["refresh_token"], scope="openid")
    assert narrow.status_code == 200, narrow.json
    body = narrow.json
    assert body["scope"] == "openid"
    info = client.get("/userinfo", headers=bearer(body["access_token"])).json
    assert "email" not in info and "name" not in info
    # RFC 6749 §6: the new refresh token has the scope of the one it replaced.
    wide_again = refresh(client, rp, body["refresh_token"])
    assert wide_again.status_code == 200, wide_again.json
    assert set(wide_again.json["scope"].split()) == set(OFFLINE.split())


def test_narrowing_below_offline_access_still_rotates(client, user, rp):
    first = tokens_for(client, rp, user, scope=OFFLINE)
    body = refresh(client, rp, first["refresh_token"], scope="openid email").json
    assert body["scope"] == "openid email"
    assert body["refresh_token"], "the old one is spent; the client must get the next"
    assert refresh(client, rp, body["refresh_token"]).status_code == 200


@pytest.mark.parametrize("scope", ["openid phone", "openid offline_access admin"],
                         ids=["not-granted", "unknown"])
def test_refresh_cannot_widen_the_scope(client, user, rp, scope):
    first = tokens_for(client, rp, user, scope="openid offline_access")
    response = refresh(client, rp, first["refresh_token"], scope=scope)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"
    # A refused request spends nothing.
    assert refresh(client, rp, first["refresh_token"]).status_code == 200


def test_refresh_token_of_another_client_is_refused_and_left_intact(client, factory, user,
                                                                   rp):
    first = tokens_for(client, rp, user, scope=OFFLINE)
    thief = factory.rp()
    assert_invalid_grant(refresh(client, thief, first["refresh_token"]))
    assert refresh(client, rp, first["refresh_token"]).status_code == 200


def test_unknown_refresh_token_is_refused(client, rp):
    assert_invalid_grant(refresh(client, rp, "nope"))


def test_missing_refresh_token_is_invalid_request(client, rp):
    from tests.helpers import token_request

    response = token_request(client, rp, grant_type="refresh_token")
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_expired_refresh_token_is_refused(client, user, rp, clock, settings):
    first = tokens_for(client, rp, user, scope=OFFLINE)
    clock.advance(settings.refresh_token_ttl + 1)
    assert_invalid_grant(refresh(client, rp, first["refresh_token"]))


def test_refresh_token_of_a_disabled_user_is_refused(client, factory, user, rp):
    first = tokens_for(client, rp, user, scope=OFFLINE)
    with factory.app.app_context():
        from idp.db import db
        from idp.models import User

        db.session.get(User, user.id).status = "disabled"
        db.session.commit()
    assert_invalid_grant(refresh(client, rp, first["refresh_token"]))


def test_concurrent_refreshes_with_one_token_succeed_once(app, client, user, rp):
    first = tokens_for(client, rp, user, scope=OFFLINE)
    n = 4
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def spend() -> None:
        http = app.test_client()
        barrier.wait()
        statuses.append(refresh(http, rp, first["refresh_token"]).status_code)

    threads = [threading.Thread(target=spend) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200] + [400] * (n - 1)
