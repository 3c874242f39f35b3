"""Consent (OIDC Core §3.1.2.4): asked once per client and scope, remembered, revocable."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    ISSUER,
    authorize,
    consent_if_asked,
    csrf_from,
    flow_from,
    query_of,
    refresh,
    sign_in,
    tokens_for,
)


@pytest.fixture
def rp(factory):
    return factory.rp(client_name="Photo Printer")


def asks_consent(response) -> bool:
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return response.headers["Location"].startswith("/consent?flow=")


def front_channel(client, rp, user, **params):
    """authorize (+ sign-in when asked); the response that follows the sign-in."""
    response = authorize(client, rp, **params)
    if response.headers["Location"].startswith("/login"):
        response = sign_in(client, response.headers["Location"], email=user.email)
    return response


def test_first_authorization_asks_and_names_client_and_scopes(client, user, rp):
    response = front_channel(client, rp, user, scope="openid email offline_access",
                             ui_locales="en")
    assert asks_consent(response)
    page = client.get(response.headers["Location"])
    html = page.get_data(as_text=True)
    assert "Photo Printer wants to access the following." in html
    assert "Your email address" in html
    assert "Access while you are signed out" in html
    assert "Your phone number" not in html
    allowed = consent_if_asked(client, response)
    assert "code" in query_of(allowed.headers["Location"])


def test_consent_is_remembered_for_the_same_client_and_scope(client, user, rp):
    consent_if_asked(client, front_channel(client, rp, user, scope="openid email"))
    again = authorize(client, rp, scope="openid email")
    assert not asks_consent(again)
    assert "code" in query_of(again.headers["Location"])
    fewer = authorize(client, rp, scope="openid")
    assert "code" in query_of(fewer.headers["Location"])


def test_a_new_scope_asks_again_and_then_both_are_remembered(client, user, rp):
    consent_if_asked(client, front_channel(client, rp, user, scope="openid email"))
    wider = authorize(client, rp, scope="openid email phone")
    assert asks_consent(wider)
    consent_if_asked(client, wider)
    assert not asks_consent(authorize(client, rp, scope="openid phone email"))


def test_claims_asked_one_by_one_are_consented_like_their_scope(client, user, rp):
    consent_if_asked(client, front_channel(client, rp, user, scope="openid"))
    claims = json.dumps({"id_token": {"email": None}, "userinfo": {"phone_number": None}})
    response = authorize(client, rp, scope="openid", claims=claims, ui_locales="en")
    assert asks_consent(response), "email and phone were never allowed"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your email address" in html
    assert "Your phone number" in html
    consent_if_asked(client, response)
    assert not asks_consent(authorize(client, rp, scope="openid", claims=claims))


def test_consent_is_per_client(client, factory, user, rp):
    consent_if_asked(client, front_channel(client, rp, user))
    other = factory.rp()
    assert asks_consent(authorize(client, other))


def test_prompt_consent_asks_again(client, user, rp):
    consent_if_asked(client, front_channel(client, rp, user))
    assert asks_consent(authorize(client, rp, prompt="consent"))


def test_prompt_none_uses_remembered_consent(client, user, rp):
    assert query_of(authorize(client, rp, prompt="none").headers["Location"])["error"] == (
        "login_required")
    consent_if_asked(client, front_channel(client, rp, user))
    assert "code" in query_of(authorize(client, rp, prompt="none").headers["Location"])


def test_deny_returns_access_denied_to_the_client(client, user, rp):
    response = front_channel(client, rp, user, state="deny-state")
    denied = consent_if_asked(client, response, decision="deny")
    assert denied.status_code == 302
    assert denied.headers["Location"].startswith(rp.redirect_uri)
    result = query_of(denied.headers["Location"])
    assert result["error"] == "access_denied"
    assert result["state"] == "deny-state"
    assert result["iss"] == ISSUER
    assert "code" not in result
    # Nothing was remembered.
    assert asks_consent(authorize(client, rp))


def test_first_party_client_never_sees_consent(client, factory, user):
    rp = factory.rp(first_party=True)
    response = front_channel(client, rp, user, scope="openid profile email offline_access")
    assert "code" in query_of(response.headers["Location"])
    response = authorize(client, rp, prompt="consent")
    assert "code" in query_of(response.headers["Location"])


def test_configured_first_party_client_id_never_sees_consent(client, app, factory, user):
    rp = factory.rp()
    app.extensions["idp.settings"] = app.extensions["idp.settings"].replace(
        first_party_clients=(rp.client_id,))
    response = front_channel(client, rp, user)
    assert "code" in query_of(response.headers["Location"])


def test_consent_post_needs_csrf(client, user, rp):
    response = front_channel(client, rp, user)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    forged = client.post("/consent", data={"flow": flow_from(page), "decision": "allow"})
    assert forged.status_code == 400
    assert "Location" not in forged.headers


def test_consent_flow_is_bound_to_the_browser(client, app, user, rp):
    response = front_channel(client, rp, user)
    flow_url = response.headers["Location"]
    stranger = app.test_client()
    assert sign_in(stranger, "/login", email=user.email).status_code == 302
    page = stranger.get(flow_url)
    assert page.status_code == 400
    assert "Allow" not in page.get_data(as_text=True) and "許可する" not in page.get_data(
        as_text=True)


def test_consent_without_a_session_is_refused(client, app, user, rp):
    response = front_channel(client, rp, user)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    client.delete_cookie("idp_session")
    result = client.post("/consent", data={"flow": flow_from(page), "decision": "allow",
                                           "csrf_token": csrf_from(page)})
    assert result.status_code == 400


def test_revoking_consent_asks_again_and_ends_refresh_tokens(client, user, rp):
    body = tokens_for(client, rp, user, scope="openid offline_access")
    listing = client.get("/consents")
    html = listing.get_data(as_text=True)
    assert "Photo Printer" in html
    response = client.post(f"/consents/{rp.client_id}/revoke",
                           data={"csrf_token": csrf_from(html)})
    assert response.status_code == 302
    assert refresh(client, rp, body["refresh_token"]).json["error"] == "invalid_grant"
    assert query_of(authorize(client, rp, prompt="none").headers["Location"])["error"] == (
        "consent_required")
