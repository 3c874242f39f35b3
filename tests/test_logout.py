"""RP-Initiated Logout 1.0 (end_session_endpoint)."""

from __future__ import annotations

import pytest

from tests.helpers import (
    authorize,
    csrf_from,
    form_fields,
    new_key,
    query_of,
    sign_in,
    tokens_for,
)

AFTER = "https://rp.example.com/signed-out"


@pytest.fixture
def rp(factory):
    return factory.rp(post_logout_redirect_uris=[AFTER])


@pytest.fixture
def hint(client, user, rp) -> str:
    """Signs ``user`` in to ``rp`` (session + consent) and returns the ID token."""
    return tokens_for(client, rp, user)["id_token"]


def session_alive(client, rp) -> bool:
    response = authorize(client, rp, prompt="none")
    result = query_of(response.headers["Location"])
    assert "code" in result or result["error"] == "login_required", result
    return "code" in result


def assert_error_page(response) -> None:
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "<code>invalid_request</code>" in response.get_data(as_text=True)


def test_valid_hint_and_registered_uri_end_the_session_and_redirect_with_state(client, rp,
                                                                               hint):
    assert session_alive(client, rp)
    response = client.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": AFTER, "state": "bye-1"})
    assert response.status_code == 302
    assert response.headers["Location"] == AFTER + "?state=bye-1"
    assert not session_alive(client, rp)


def test_redirect_without_state_has_no_state(client, rp, hint):
    response = client.get("/logout", query_string={"id_token_hint": hint,
                                                   "post_logout_redirect_uri": AFTER})
    assert response.headers["Location"] == AFTER


def test_rp_may_post_the_logout_request(client, rp, hint):
    response = client.post("/logout", data={"id_token_hint": hint, "client_id": rp.client_id,
                                            "post_logout_redirect_uri": AFTER, "state": "s"})
    assert response.status_code == 302
    assert response.headers["Location"] == AFTER + "?state=s"
    assert not session_alive(client, rp)


def test_session_cookie_is_cleared(client, rp, hint):
    response = client.get("/logout", query_string={"id_token_hint": hint})
    cookies = " ".join(response.headers.getlist("Set-Cookie"))
    assert "idp_session=;" in cookies
    assert "Max-Age=0" in cookies or "Expires=Thu, 01 Jan 1970" in cookies


def test_expired_id_token_hint_is_still_a_valid_hint(client, rp, hint, clock, settings):
    clock.advance(settings.id_token_ttl + 60)
    response = client.get("/logout", query_string={"id_token_hint": hint,
                                                   "post_logout_redirect_uri": AFTER})
    assert response.headers["Location"] == AFTER


@pytest.mark.parametrize(
    "target",
    ["https://evil.example.com/", AFTER + "?x=1", AFTER + "/", "https://rp.example.com/cb"],
    ids=["foreign", "query-added", "slash-added", "redirect-uri-not-logout-uri"],
)
def test_unregistered_post_logout_redirect_uri_shows_an_error_not_a_redirect(client, rp, hint,
                                                                           target):
    response = client.get("/logout", query_string={"id_token_hint": hint,
                                                   "post_logout_redirect_uri": target})
    assert_error_page(response)
    assert session_alive(client, rp)


def test_post_logout_redirect_uri_of_another_client_is_refused(client, factory, rp, hint):
    other = factory.rp(post_logout_redirect_uris=["https://other.example.com/bye"])
    response = client.get("/logout", query_string={
        "id_token_hint": hint, "post_logout_redirect_uri": "https://other.example.com/bye"})
    assert_error_page(response)
    assert other.client_id  # registered, but not the hint's audience


@pytest.mark.parametrize("make", [
    lambda hint: hint[:-6] + "AAAAAA",
    lambda hint: "garbage",
    lambda hint: __import__("joserfc.jwt", fromlist=["encode"]).encode(
        {"alg": "RS256", "kid": "k"}, {"iss": "http://localhost", "sub": "x", "aud": "y"},
        new_key("RS256"), algorithms=["RS256"]),
], ids=["bad-signature", "garbage", "foreign-key"])
def test_bad_id_token_hint_shows_an_error(client, rp, hint, make):
    response = client.get("/logout", query_string={"id_token_hint": make(hint),
                                                   "post_logout_redirect_uri": AFTER})
    assert_error_page(response)
    assert session_alive(client, rp)


def test_client_id_not_matching_the_hint_is_refused(client, factory, rp, hint):
    other = factory.rp(post_logout_redirect_uris=[AFTER])
    response = client.get("/logout", query_string={
        "id_token_hint": hint, "client_id": other.client_id, "post_logout_redirect_uri": AFTER})
    assert_error_page(response)


def test_post_logout_redirect_uri_without_hint_or_client_is_refused(client, rp, hint):
    response = client.get("/logout", query_string={"post_logout_redirect_uri": AFTER})
    assert_error_page(response)
    assert session_alive(client, rp)


def test_without_hint_the_user_confirms_and_csrf_protects_it(client, rp, hint):
    page = client.get("/logout")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert session_alive(client, rp), "a bare GET must not sign anyone out"

    forged = client.post("/logout", data={"confirm": "yes"})
    assert forged.status_code == 400
    assert session_alive(client, rp)

    done = client.post("/logout", data={"confirm": "yes", "csrf_token": csrf_from(html)})
    assert done.status_code == 200
    assert not session_alive(client, rp)


def test_client_id_only_confirms_then_redirects(client, rp, hint):
    page = client.get("/logout", query_string={"client_id": rp.client_id,
                                               "post_logout_redirect_uri": AFTER,
                                               "state": "st"})
    assert page.status_code == 200
    fields = form_fields(page.get_data(as_text=True))
    assert fields["post_logout_redirect_uri"] == AFTER
    assert session_alive(client, rp)
    response = client.post("/logout", data=fields)
    assert response.status_code == 302
    assert response.headers["Location"] == AFTER + "?state=st"
    assert not session_alive(client, rp)


def test_hint_for_another_user_asks_before_signing_out(client, factory, rp, hint):
    other = factory.user()
    assert sign_in(client, "/login", email=other.email).status_code == 302
    page = client.get("/logout", query_string={"id_token_hint": hint,
                                               "post_logout_redirect_uri": AFTER})
    assert page.status_code == 200
    assert "confirm" in form_fields(page.get_data(as_text=True))
    assert page.headers.get("Location") is None


def test_logout_without_a_session_still_redirects_a_valid_request(client, rp, hint):
    client.get("/logout", query_string={"id_token_hint": hint})
    response = client.get("/logout", query_string={"id_token_hint": hint,
                                                   "post_logout_redirect_uri": AFTER,
                                                   "state": "again"})
    assert response.headers["Location"] == AFTER + "?state=again"


def test_after_logout_prompt_none_is_login_required(client, rp, hint):
    client.get("/logout", query_string={"id_token_hint": hint})
    response = authorize(client, rp, prompt="none", state="after")
    result = query_of(response.headers["Location"])
    assert result["error"] == "login_required"
    assert result["state"] == "after"


def test_after_logout_a_new_sign_in_gets_a_new_sid(client, user, rp, hint):
    from tests.helpers import verify_id_token

    _, before = verify_id_token(client, hint, audience=rp.client_id)
    client.get("/logout", query_string={"id_token_hint": hint})
    again = tokens_for(client, rp, user)["id_token"]
    _, after = verify_id_token(client, again, audience=rp.client_id)
    assert after["sid"] != before["sid"]
