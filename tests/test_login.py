"""The sign-in page: CSRF, uniform failures, session cookie hygiene, security headers."""

from __future__ import annotations

import re

import pytest

from tests.helpers import PASSWORD, authorize, csrf_from, flow_from, sign_in


def set_cookie(response, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "=") and not header.startswith(name + "=;"):
            return header
    raise AssertionError(f"{name} not set: {response.headers.getlist('Set-Cookie')}")


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def error_text(response) -> str:
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)[:500]
    return match.group(1)


@pytest.fixture
def user(factory):
    return factory.user(email="login@example.com")


def test_sign_in_without_a_csrf_token_is_refused(client, user):
    client.get("/login")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "idp_session" not in " ".join(response.headers.getlist("Set-Cookie"))


def test_sign_in_with_a_csrf_token_of_another_browser_is_refused(client, app, user):
    other = app.test_client()
    token = csrf_from(other.get("/login").get_data(as_text=True))
    client.get("/login")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 400


def test_successful_sign_in_lands_on_the_signed_in_page(client, user):
    response = sign_in(client, "/login", email=user.email)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "login@example.com" in page


@pytest.mark.parametrize("typed", ["LOGIN@Example.com", " login@example.com ",
                                   "ｌｏｇｉｎ＠ｅｘａｍｐｌｅ．ｃｏｍ"],
                         ids=["upper-case", "spaces", "full-width"])
def test_email_is_matched_as_the_user_meant_it(client, user, typed):
    assert sign_in(client, "/login", email=typed).status_code == 302


def test_wrong_password_and_unknown_email_look_the_same(client, factory, user):
    wrong = sign_in(client, "/login", email=user.email, password="Wrong-Horse-9")
    unknown = sign_in(client, "/login", email="nobody@example.com", password="Wrong-Horse-9")
    disabled_user = factory.user(email="off@example.com")
    with factory.app.app_context():
        from idp.db import db
        from idp.models import User

        db.session.get(User, disabled_user.id).status = "disabled"
        db.session.commit()
    disabled = sign_in(client, "/login", email="off@example.com")
    assert wrong.status_code == unknown.status_code == disabled.status_code
    assert wrong.status_code in (200, 400, 401)
    assert error_text(wrong) == error_text(unknown) == error_text(disabled)
    for response in (wrong, unknown, disabled):
        assert "idp_session=" not in " ".join(
            h for h in response.headers.getlist("Set-Cookie") if not h.startswith("idp_session=;")
        )


def test_missing_fields_are_reported(client):
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": csrf_from(page), "email": "a@b.c"})
    assert response.status_code == 400
    assert error_text(response)


def test_session_cookie_is_httponly_samesite_lax(client, user):
    header = set_cookie(sign_in(client, "/login", email=user.email), "idp_session")
    attributes = [a.strip().lower() for a in header.split(";")[1:]]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert len(cookie_value(header)) >= 32


def test_other_cookies_are_httponly_samesite_lax(client, factory, user):
    rp = factory.rp()
    response = authorize(client, rp)
    browser = set_cookie(response, "idp_browser")
    ui = set_cookie(client.get(response.headers["Location"]), "idp_ui")
    for header in (browser, ui):
        attributes = [a.strip().lower() for a in header.split(";")[1:]]
        assert "httponly" in attributes
        assert "samesite=lax" in attributes


def test_session_cookie_is_renewed_at_every_sign_in(client, user):
    first = cookie_value(set_cookie(sign_in(client, "/login", email=user.email), "idp_session"))
    second = cookie_value(set_cookie(sign_in(client, "/login", email=user.email),
                                     "idp_session"))
    assert first != second
    # The replaced session is gone server-side, not just in this browser.
    other_browser = client.application.test_client()
    other_browser.set_cookie("idp_session", first)
    page = other_browser.get("/signed-in")
    assert page.status_code == 302


def test_a_planted_session_cookie_is_not_adopted(client, user):
    # Session fixation: an attacker-chosen cookie value must not become the session.
    client.set_cookie("idp_session", "attacker-chosen-value")
    header = set_cookie(sign_in(client, "/login", email=user.email), "idp_session")
    assert cookie_value(header) != "attacker-chosen-value"


def test_sign_in_inside_a_flow_continues_the_flow(client, factory, user):
    rp = factory.rp(first_party=True)
    response = sign_in(client, authorize(client, rp).headers["Location"], email=user.email)
    assert response.headers["Location"].startswith(rp.redirect_uri)
    assert set_cookie(response, "idp_session")


def test_expired_or_foreign_flow_is_refused(client, app, factory, user):
    rp = factory.rp()
    location = authorize(client, rp).headers["Location"]
    stranger = app.test_client()
    page = stranger.get(location)
    assert page.status_code == 400
    assert 'name="flow"' not in page.get_data(as_text=True)
    assert stranger.get("/login?flow=nonexistent").status_code == 400


def test_login_page_carries_the_flow_of_its_url(client, factory):
    rp = factory.rp()
    location = authorize(client, rp).headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert flow_from(page) == location.split("flow=")[1]


PAGES = ["/login", "/logout", "/authorize", "/consents", "/login?flow=expired"]


@pytest.mark.parametrize("path", PAGES, ids=["login", "logout", "error", "consents-redirect",
                                             "expired-flow"])
def test_pages_carry_security_headers(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    if response.mimetype == "text/html":
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'none'" in csp
        assert "script-src" not in csp  # no page of ours runs script
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"


def test_consent_page_carries_security_headers(client, factory, user):
    rp = factory.rp()
    response = sign_in(client, authorize(client, rp).headers["Location"], email=user.email)
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/.well-known/openid-configuration", "/jwks.json",
                                  "/userinfo"])
def test_json_endpoints_carry_nosniff(client, path):
    assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"


def test_sign_in_without_a_flow_returns_to_a_local_next_page(client, user):
    from tests.signin_helpers import login

    response = login(client, user.email, next_url="/admin/users?page=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/users?page=2"


@pytest.mark.parametrize("target", [
    "//evil.example/", "https://evil.example/", "http:evil.example", "/\\evil.example",
    "\\\\evil.example", "/\t/evil.example", "javascript:alert(1)", "evil.example/x", "",
    "/%0d%0aSet-Cookie:x=y",
], ids=["scheme-relative", "absolute", "scheme-only", "backslash", "double-backslash", "tab",
        "javascript", "relative", "empty", "encoded-crlf"])
def test_next_pointing_elsewhere_is_ignored(client, user, target):
    from urllib.parse import quote

    from tests.helpers import csrf_from

    page = client.get("/login?next=" + quote(target, safe=""))
    html = page.get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": csrf_from(html), "email": user.email,
                                           "password": PASSWORD, "next": target})
    assert response.status_code == 302
    location = response.headers["Location"]
    if target == "/%0d%0aSet-Cookie:x=y":
        # A path on this site, which the browser requests (and we answer 404): harmless.
        assert location.startswith("/") and "\n" not in location and "\r" not in location
        assert all(not h.startswith("x=") for h in response.headers.getlist("Set-Cookie"))
    else:
        assert location == "/signed-in"


def test_next_is_ignored_inside_an_oidc_flow(client, factory, user):
    rp = factory.rp(first_party=True)
    location = authorize(client, rp).headers["Location"]
    html = client.get(location + "&next=/admin").get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": csrf_from(html), "email": user.email,
                                           "password": PASSWORD, "flow": flow_from(html),
                                           "next": "/admin"})
    assert response.headers["Location"].startswith(rp.redirect_uri)
