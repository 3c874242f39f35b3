"""Authorization endpoint (RFC 6749 §4.1, RFC 7636, RFC 9207, OIDC Core §3.1.2) over HTTP."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import (
    ISSUER,
    authorize,
    exchange,
    form_fields,
    get_code,
    pkce_pair,
    query_of,
    sign_in,
    tokens_for,
    verify_id_token,
)


def send(http, rp, *, method: str = "GET", drop: tuple[str, ...] = (), **params: str):
    """An authorization request with full control over its parameters."""
    query = {"client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
             "response_type": "code", "scope": "openid", "state": "st-1", "nonce": "n-1"}
    query.update(params)
    for name in drop:
        query.pop(name, None)
    if method == "POST":
        return http.post("/authorize", data=query)
    return http.get("/authorize", query_string=query)


def signed_in(http, user):
    """Give the browser a session for ``user`` (signing in without an authorization request)."""
    response = sign_in(http, "/login", email=user.email)
    assert response.status_code == 302, response.get_data(as_text=True)


def redirected_error(response, rp) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert location.startswith(rp.redirect_uri + "?"), location
    return query_of(location)


# -- errors shown to the user, never redirected ---------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        {"client_id": "no-such-client"},
        {"drop": ("client_id",)},
        {"drop": ("redirect_uri",)},
        {"redirect_uri": "https://evil.example.com/cb"},
        {"redirect_uri": "https://rp.example.com/cb/"},
        {"redirect_uri": "https://rp.example.com/cb?extra=1"},
        {"duplicate": "client_id"},
        {"duplicate": "redirect_uri"},
    ],
    ids=["unknown-client", "missing-client-id", "missing-redirect-uri",
         "unregistered-redirect-uri", "redirect-uri-with-slash", "redirect-uri-with-query",
         "duplicated-client-id", "duplicated-redirect-uri"],
)
def test_untrusted_client_or_redirect_uri_gets_an_error_page_not_a_redirect(client, factory,
                                                                            case):
    rp = factory.rp()
    case = dict(case)
    if "duplicate" in case:
        name = case.pop("duplicate")
        query = [("client_id", rp.client_id), ("redirect_uri", rp.redirect_uri),
                 ("response_type", "code"), ("scope", "openid"), ("state", "s")]
        query.append((name, dict(query)[name]))
        response = client.get("/authorize", query_string=query)
    else:
        response = send(client, rp, **case)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert re.search(r"<code>invalid_(request|client)</code>", page)
    assert "evil.example.com" not in page


# -- errors returned to the client --------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"drop": ("response_type",)}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code token"}, "unsupported_response_type"),
        ({"scope": "nonsense other"}, "invalid_scope"),
        ({"drop": ("scope",)}, "invalid_scope"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "x" * 43}, "invalid_request"),  # no method means plain
        ({"code_challenge": "x" * 43, "code_challenge_method": "S512"}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": "!" * 43, "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"prompt": "none consent"}, "invalid_request"),
        ({"prompt": "bogus"}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": "https://rp.example.com/req.jwt"}, "request_uri_not_supported"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"max_age": "1.5"}, "invalid_request"),
        ({"id_token_hint": "not.a.jwt"}, "invalid_request"),
        ({"claims": "{not json"}, "invalid_request"),
        ({"claims": "[1, 2]"}, "invalid_request"),
        ({"claims": json.dumps({"userinfo": ["email"]})}, "invalid_request"),
        ({"claims": json.dumps({"id_token": {"email": True}})}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"duplicate": "scope"}, "invalid_request"),
        ({"duplicate": "nonce"}, "invalid_request"),
    ],
    ids=["missing-response-type", "response-type-token", "response-type-hybrid",
         "unknown-scopes-only", "missing-scope", "pkce-plain", "pkce-without-method",
         "pkce-unknown-method", "pkce-challenge-too-short", "pkce-challenge-bad-chars",
         "pkce-method-without-challenge", "prompt-none-with-login", "prompt-none-with-consent",
         "prompt-unknown", "request-object", "request-uri", "max-age-negative",
         "max-age-word", "max-age-fraction", "id-token-hint-garbage", "claims-not-json",
         "claims-not-object", "claims-member-not-object", "claims-entry-not-object",
         "response-mode-fragment", "duplicated-scope", "duplicated-nonce"],
)
def test_invalid_request_is_redirected_with_error_state_and_iss(client, factory, params, error):
    rp = factory.rp()
    params = dict(params)
    if "duplicate" in params:
        name = params.pop("duplicate")
        query = [("client_id", rp.client_id), ("redirect_uri", rp.redirect_uri),
                 ("response_type", "code"), ("scope", "openid"), ("state", "st-1"),
                 ("nonce", "n")]
        query.append((name, "other"))
        response = client.get("/authorize", query_string=query)
    else:
        response = send(client, rp, **params)
    result = redirected_error(response, rp)
    assert result["error"] == error
    assert result["state"] == "st-1"
    assert result["iss"] == ISSUER
    assert "code" not in result


def test_error_description_keeps_to_the_allowed_characters(client, factory):
    # RFC 6749 §4.1.2.1: %x20-21 / %x23-5B / %x5D-7E, even when it quotes the request.
    rp = factory.rp()
    result = redirected_error(send(client, rp, prompt='ログイン"\\<x>'), rp)
    assert result["error"] == "invalid_request"
    assert re.fullmatch(r'[\x20-\x21\x23-\x5B\x5D-\x7E]+', result["error_description"])


def test_error_without_state_in_the_request_has_no_state(client, factory):
    rp = factory.rp()
    result = redirected_error(send(client, rp, drop=("state",), response_type="token"), rp)
    assert result["error"] == "unsupported_response_type"
    assert "state" not in result
    assert result["iss"] == ISSUER


def test_public_client_without_pkce_is_refused(client, factory):
    rp = factory.rp(auth_method="none")
    result = redirected_error(send(client, rp), rp)
    assert result["error"] == "invalid_request"
    assert "PKCE" in result["error_description"]


def test_public_client_with_s256_pkce_goes_to_sign_in(client, factory):
    rp = factory.rp(auth_method="none")
    _, challenge = pkce_pair()
    response = send(client, rp, code_challenge=challenge, code_challenge_method="S256")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?flow=")


def test_client_not_registered_for_the_code_grant_gets_unauthorized_client(client, factory):
    rp = factory.rp(grant_types=("client_credentials",))
    assert redirected_error(send(client, rp), rp)["error"] == "unauthorized_client"


def test_id_token_hint_issued_to_another_client_is_refused(client, factory):
    user = factory.user()
    other = factory.rp()
    hint = tokens_for(client, other, user)["id_token"]
    rp = factory.rp()
    result = redirected_error(send(client, rp, id_token_hint=hint), rp)
    assert result["error"] == "invalid_request"


def test_forged_id_token_hint_is_refused(client, factory):
    from joserfc import jwt

    from tests.helpers import new_key

    user = factory.user()
    rp = factory.rp()
    forged = jwt.encode({"alg": "RS256", "kid": "forged"},
                        {"iss": ISSUER, "sub": user.id, "aud": rp.client_id},
                        new_key("RS256"), algorithms=["RS256"])
    assert redirected_error(send(client, rp, id_token_hint=forged), rp)["error"] == (
        "invalid_request")


# -- prompt=none ----------------------------------------------------------------------


def test_prompt_none_without_session_returns_login_required(client, factory):
    rp = factory.rp()
    result = redirected_error(send(client, rp, prompt="none"), rp)
    assert result["error"] == "login_required"
    assert result["state"] == "st-1"
    assert result["iss"] == ISSUER


def test_prompt_none_needing_consent_returns_consent_required(client, factory):
    user = factory.user()
    signed_in(client, user)
    rp = factory.rp()
    result = redirected_error(send(client, rp, prompt="none"), rp)
    assert result["error"] == "consent_required"
    assert result["state"] == "st-1"


def test_prompt_none_with_session_and_consent_returns_a_code(client, factory):
    user = factory.user()
    rp = factory.rp()
    get_code(client, rp, user)
    result = query_of(send(client, rp, prompt="none").headers["Location"])
    assert "code" in result
    assert result["state"] == "st-1"
    assert result["iss"] == ISSUER


# -- request forms ---------------------------------------------------------------------


def test_post_to_authorize_works_like_get(client, factory):
    user = factory.user()
    rp = factory.rp()
    get_code(client, rp, user)  # session + consent
    response = send(client, rp, method="POST", prompt="none", state="posted")
    result = redirected_error(response, rp)
    assert "code" in result
    assert result["state"] == "posted"
    assert exchange(client, rp, result["code"]).status_code == 200


def test_post_to_authorize_reports_errors_like_get(client, factory):
    rp = factory.rp()
    result = redirected_error(send(client, rp, method="POST", prompt="none"), rp)
    assert result["error"] == "login_required"


def test_unknown_parameters_are_ignored(client, factory):
    user = factory.user()
    rp = factory.rp()
    code, query = get_code(client, rp, user, frobnicate="yes", display="page",
                           acr_values="urn:idp:loa:1", scope="openid profile unknown_scope")
    body = exchange(client, rp, code).json
    assert body["scope"] == "openid profile"
    assert query["iss"] == ISSUER


def test_redirect_uri_query_is_kept_and_extended(client, factory):
    user = factory.user()
    rp = factory.rp(redirect_uri="https://rp.example.com/cb?tenant=7")
    _, query = get_code(client, rp, user)
    assert query["tenant"] == "7"
    assert "code" in query


# -- response_mode=form_post ------------------------------------------------------------


def test_form_post_renders_an_auto_submitting_form_to_the_redirect_uri(client, factory):
    user = factory.user()
    rp = factory.rp()
    get_code(client, rp, user)  # session + consent
    response = send(client, rp, response_mode="form_post", state="fp-state")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.search(rf'<form method="post" action="{re.escape(rp.redirect_uri)}"', html)
    fields = form_fields(html)
    assert fields["state"] == "fp-state"
    assert fields["iss"] == ISSUER
    assert exchange(client, rp, fields["code"]).status_code == 200
    # It must submit itself: a script from our origin, which the page's CSP must allow.
    assert re.search(r'<script src="/static/autosubmit\.js">', html)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert response.headers["Cache-Control"] == "no-store"
    script = client.get("/static/autosubmit.js").get_data(as_text=True)
    assert ".submit()" in script


def test_form_post_errors_are_posted_too(client, factory):
    rp = factory.rp()
    response = send(client, rp, response_mode="form_post", prompt="none")
    assert response.status_code == 200
    fields = form_fields(response.get_data(as_text=True))
    assert fields["error"] == "login_required"
    assert fields["state"] == "st-1"
    assert fields["iss"] == ISSUER


def test_form_post_values_are_html_escaped(client, factory):
    rp = factory.rp()
    state = '"><script>alert(1)</script>'
    response = send(client, rp, response_mode="form_post", prompt="none", state=state)
    html = response.get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert form_fields(html)["state"] == state


# -- re-authentication -------------------------------------------------------------------


@pytest.fixture
def frozen(monkeypatch, clock):
    """The app clock stopped on a whole second; only ``frozen.advance`` moves it, so a test
    does not depend on how long password hashing took."""
    state = {"t": float(int(clock.now()))}
    monkeypatch.setattr(clock, "now", lambda: state["t"])

    class Frozen:
        @staticmethod
        def advance(seconds: float) -> None:
            state["t"] += seconds

    return Frozen()


def _auth_time(client, rp, body) -> int:
    return verify_id_token(client, body["id_token"], audience=rp.client_id)[1]["auth_time"]


def test_prompt_login_forces_the_login_page_and_a_fresh_auth_time(client, factory, clock):
    user = factory.user()
    rp = factory.rp()
    first = _auth_time(client, rp, tokens_for(client, rp, user))
    clock.advance(30)
    response = authorize(client, rp, prompt="login")
    assert response.headers["Location"].startswith("/login?flow=")
    second = _auth_time(client, rp, tokens_for(client, rp, user, prompt="login"))
    assert second >= first + 30


@pytest.mark.parametrize(("max_age", "wait", "relogin"),
                         [("0", 0, True), ("10", 30, True), ("3600", 30, False)],
                         ids=["max-age-0", "elapsed", "within"])
def test_max_age_forces_reauthentication_once_elapsed(client, factory, frozen, max_age, wait,
                                                      relogin):
    user = factory.user()
    rp = factory.rp()
    first = _auth_time(client, rp, tokens_for(client, rp, user))
    frozen.advance(wait)
    response = authorize(client, rp, max_age=max_age)
    assert response.headers["Location"].startswith("/login?flow=") is relogin
    body = tokens_for(client, rp, user, max_age=max_age)
    auth_time = _auth_time(client, rp, body)
    if relogin:
        assert auth_time == first + wait
    else:
        assert auth_time == first


def test_max_age_equal_to_the_elapsed_time_asks_again(client, factory, frozen):
    # auth_time has whole seconds: an elapsed "10" may be 10.9 s, more than max_age=10.
    user = factory.user()
    rp = factory.rp()
    tokens_for(client, rp, user)
    frozen.advance(10)
    assert authorize(client, rp, max_age="10").headers["Location"].startswith("/login?flow=")
    frozen.advance(-1)
    assert "code" in query_of(authorize(client, rp, max_age="10").headers["Location"])


def test_elapsed_max_age_under_prompt_none_returns_login_required(client, factory, clock):
    user = factory.user()
    rp = factory.rp()
    tokens_for(client, rp, user)
    clock.advance(30)
    assert redirected_error(send(client, rp, prompt="none", max_age="10"), rp)["error"] == (
        "login_required")


def test_id_token_hint_for_the_signed_in_user_passes_prompt_none(client, factory):
    user = factory.user()
    rp = factory.rp()
    hint = tokens_for(client, rp, user)["id_token"]
    result = redirected_error(send(client, rp, prompt="none", id_token_hint=hint), rp)
    assert "code" in result


def test_id_token_hint_for_another_user_asks_to_sign_in(client, factory):
    alice, bob = factory.user(), factory.user()
    rp = factory.rp()
    hint = tokens_for(client, rp, alice)["id_token"]
    signed_in(client, bob)
    response = send(client, rp, id_token_hint=hint)
    assert response.headers["Location"].startswith("/login?flow=")
    none = redirected_error(send(client, rp, id_token_hint=hint, prompt="none"), rp)
    assert none["error"] == "login_required"


def test_id_token_hint_is_answered_for_the_hinted_user_only(client, factory):
    alice, bob = factory.user(), factory.user()
    rp = factory.rp()
    hint = tokens_for(client, rp, alice)["id_token"]
    signed_in(client, bob)
    # Bob signs in again instead of Alice: the RP asked about Alice.
    response = sign_in(client, send(client, rp, id_token_hint=hint).headers["Location"],
                       email=bob.email)
    assert redirected_error(response, rp)["error"] == "login_required"
    # Alice signs in: her code.
    response = sign_in(client, send(client, rp, id_token_hint=hint).headers["Location"],
                       email=alice.email)
    code = redirected_error(response, rp)["code"]
    body = exchange(client, rp, code).json
    assert verify_id_token(client, body["id_token"], audience=rp.client_id)[1]["sub"] == (
        alice.id)


LOA2_ESSENTIAL = json.dumps({"id_token": {"acr": {"essential": True,
                                                  "values": ["urn:idp:loa:2"]}}})


def test_essential_acr_above_the_session_steps_up_through_the_chain(client, factory):
    user = factory.user()
    rp = factory.rp()
    tokens_for(client, rp, user)  # a password session: urn:idp:loa:1
    response = send(client, rp, claims=LOA2_ESSENTIAL)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/mfa?flow="), response.headers["Location"]


def test_essential_acr_above_the_session_under_prompt_none_needs_interaction(client, factory):
    user = factory.user()
    rp = factory.rp()
    tokens_for(client, rp, user)
    result = redirected_error(send(client, rp, claims=LOA2_ESSENTIAL, prompt="none"), rp)
    assert result["error"] == "interaction_required"
    assert result["iss"] == ISSUER


@pytest.mark.parametrize("prompt", [None, "none"], ids=["interactive", "prompt-none"])
def test_essential_acr_the_user_cannot_reach_is_unmet(client, factory, app, prompt):
    from tests.signin_helpers import update_user

    user = factory.user()
    rp = factory.rp()
    tokens_for(client, rp, user)
    # An upstream account's second factor is the upstream's business: no level 2 here.
    update_user(app, user.id, login_method="google")
    params = {"claims": LOA2_ESSENTIAL} | ({"prompt": prompt} if prompt else {})
    result = redirected_error(send(client, rp, **params), rp)
    assert result["error"] == "unmet_authentication_requirements"
    assert result["iss"] == ISSUER


def test_essential_acr_naming_no_known_level_is_unmet(client, factory):
    user = factory.user()
    rp = factory.rp()
    tokens_for(client, rp, user)
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["urn:x:gold"]}}})
    result = redirected_error(send(client, rp, claims=claims), rp)
    assert result["error"] == "unmet_authentication_requirements"


def test_essential_acr_the_session_reaches_is_granted(client, factory):
    user = factory.user()
    rp = factory.rp()
    tokens_for(client, rp, user)
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["urn:idp:loa:1"]}}})
    result = redirected_error(send(client, rp, claims=claims), rp)
    body = exchange(client, rp, result["code"]).json
    assert verify_id_token(client, body["id_token"], audience=rp.client_id)[1]["acr"] == (
        "urn:idp:loa:1")


# -- hints and language ----------------------------------------------------------------------


def test_login_hint_prefills_the_email(client, factory):
    rp = factory.rp()
    response = authorize(client, rp, login_hint="someone@example.com")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'name="email" value="someone@example\.com"', page)


def test_login_hint_is_escaped(client, factory):
    rp = factory.rp()
    response = authorize(client, rp, login_hint='"><b>x</b>')
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<b>x</b>" not in page


@pytest.mark.parametrize(("ui_locales", "lang", "text"),
                         [("en", "en", "Sign in"), ("en-US ja", "en", "Sign in"),
                          ("fr ja", "ja", "ログイン"), ("fr", "ja", "ログイン")],
                         ids=["en", "en-region-first", "ja-after-unsupported", "fallback-ja"])
def test_ui_locales_choose_the_language_of_the_flow_pages(client, factory, ui_locales, lang,
                                                          text):
    user = factory.user()
    rp = factory.rp()
    response = authorize(client, rp, ui_locales=ui_locales)
    login_page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'<html lang="{lang}">' in login_page
    assert text in login_page
    consent = sign_in(client, response.headers["Location"], email=user.email)
    consent_page = client.get(consent.headers["Location"]).get_data(as_text=True)
    assert f'<html lang="{lang}">' in consent_page


def test_wrong_password_page_of_an_english_flow_stays_english(client, factory):
    rp = factory.rp()
    user = factory.user()
    response = authorize(client, rp, ui_locales="en")
    page = sign_in(client, response.headers["Location"], email=user.email, password="wrong-1A!")
    assert "The email address or password is incorrect." in page.get_data(as_text=True)


def test_code_is_bound_to_the_redirect_uri_and_client(client, factory):
    user = factory.user()
    rp = factory.rp()
    code, query = get_code(client, rp, user)
    assert set(query) == {"code", "state", "iss"}
    assert len(code) >= 32


def test_a_registered_default_max_age_applies_when_the_request_names_none(client, factory,
                                                                          frozen):
    user = factory.user()
    rp = factory.rp(default_max_age=60)
    tokens_for(client, rp, user)
    frozen.advance(30)
    assert "code" in query_of(authorize(client, rp).headers["Location"])
    frozen.advance(60)
    assert authorize(client, rp).headers["Location"].startswith("/login?flow=")
