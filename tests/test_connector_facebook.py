"""Facebook connector: the Login dialog and the Graph API, against a loopback stand-in."""

from __future__ import annotations

import hashlib
import hmac
import socket
from urllib.parse import parse_qsl, urlsplit

import pytest

from idp.connectors import facebook
from idp.connectors.base import CallbackConnector, ConnectorError, Redirect
from idp.settings import SettingsError
from tests.peers.graph_api import GraphApi

APP_ID = "1234567890123456"
APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
OTHER_APP_ID = "6543210987654321"
OTHER_SECRET = "ffeeddccbbaa99887766554433221100"
CALLBACK = "http://localhost/connect/facebook/callback"
STATE = "st_3kq8Zp0vW2"


@pytest.fixture
def graph():
    with GraphApi() as server:
        server.register_app(APP_ID, APP_SECRET, redirect_uris=(CALLBACK,))
        server.register_app(OTHER_APP_ID, OTHER_SECRET, redirect_uris=("https://evil.example/cb",))
        server.add_user("alice", id="10215241773831025", name="Alice Sato",
                        email="alice@example.com")
        server.add_user("bob", id="10099887766554433", name="Bob Ito")  # no e-mail on file
        yield server


@pytest.fixture
def open_connector(app, graph):
    """``open_connector(**config)``: the connector as the provider would open it."""
    settings = app.extensions["idp.settings"]

    def make(**changes):
        values = {"app_id": APP_ID, "app_secret": APP_SECRET, "graph_url": graph.graph_url,
                  **changes}
        return facebook.open("facebook", facebook.Config(**values), settings)

    with app.app_context():
        yield make


@pytest.fixture
def connector(open_connector):
    return open_connector()


def sign_in(connector, graph, *, user="alice", link=False, **at_facebook):
    """start -> the user at the dialog -> finish, as the blueprint would run them."""
    started = connector.start(state=STATE, nonce="n-unused", callback_url=CALLBACK, link=link)
    params = graph.authorize(started.go.url, user=user, **at_facebook)
    return connector.finish(params=params, kept=started.keep, callback_url=CALLBACK)


def fails(kind, connector, graph, **kwargs) -> ConnectorError:
    with pytest.raises(ConnectorError) as caught:
        sign_in(connector, graph, **kwargs)
    assert caught.value.kind == kind, str(caught.value)
    assert_no_secrets(caught.value, graph)
    return caught.value


def assert_no_secrets(error: BaseException, graph: GraphApi) -> None:
    """Neither the message nor anything chained to it shows the secret, a token or a code."""
    seen: BaseException | None = error
    while seen is not None:
        text = f"{seen} {seen!r}"
        assert APP_SECRET not in text and OTHER_SECRET not in text
        for request in graph.received:
            for name in ("code", "access_token", "input_token", "client_secret"):
                value = request.params.get(name)
                if value:
                    assert value not in text, name
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- signing in ---------------------------------------------------------------------------


def test_signing_in_returns_the_app_scoped_facebook_identity(connector, graph):
    identity = sign_in(connector, graph)

    assert identity.connector == "facebook"
    assert identity.issuer == "https://www.facebook.com"
    assert identity.subject == "10215241773831025"
    assert identity.email == "alice@example.com"
    assert identity.email_verified is True
    assert identity.name == "Alice Sato"
    assert isinstance(connector, CallbackConnector)


def test_the_dialog_asks_for_a_code_with_state_and_the_two_basic_permissions(connector):
    started = connector.start(state=STATE, nonce="n", callback_url=CALLBACK, link=False)

    assert isinstance(started.go, Redirect)
    url = urlsplit(started.go.url)
    assert (url.scheme, url.netloc, url.path) == ("https", "www.facebook.com",
                                                  "/v25.0/dialog/oauth")
    assert dict(parse_qsl(url.query)) == {
        "client_id": APP_ID, "redirect_uri": CALLBACK, "state": STATE,
        "response_type": "code", "scope": "email,public_profile",
    }
    assert started.keep == {"state_sha256": hashlib.sha256(STATE.encode()).hexdigest()}
    assert STATE not in str(started.keep)


def test_the_code_is_exchanged_with_the_secret_in_a_post_body_then_checked_then_read(
        connector, graph):
    sign_in(connector, graph)

    exchange, inspect, me = graph.received
    assert (exchange.method, exchange.path, exchange.version) == (
        "POST", "/oauth/access_token", "v25.0")
    assert exchange.params["client_secret"] == APP_SECRET
    assert exchange.params["redirect_uri"] == CALLBACK
    assert exchange.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (inspect.method, inspect.path) == ("GET", "/debug_token")
    assert inspect.params["access_token"] == f"{APP_ID}|{APP_SECRET}"
    assert (me.method, me.path) == ("GET", "/me")
    assert me.params["fields"] == "id,name,email"
    assert inspect.params["input_token"] == me.params["access_token"]


def test_every_me_call_carries_the_appsecret_proof_of_its_token(connector, graph):
    sign_in(connector, graph)

    [me] = graph.requests_to("/me")
    token = me.params["access_token"]
    expected = hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
    assert me.params["appsecret_proof"] == expected
    assert facebook.appsecret_proof(APP_SECRET, token) == expected


def test_linking_asks_facebook_to_reauthenticate(connector, graph):
    sign_in(connector, graph, link=True)

    [dialog] = graph.dialogs
    assert dialog["auth_type"] == "reauthenticate"


def test_an_ordinary_sign_in_does_not_ask_for_reauthentication(connector, graph):
    sign_in(connector, graph, link=False)

    [dialog] = graph.dialogs
    assert "auth_type" not in dialog


@pytest.mark.parametrize(("user", "decline"), [
    ("bob", ()),
    ("alice", ("email",)),
], ids=["no-email-on-file", "email-permission-declined"])
def test_an_account_without_an_email_signs_in_without_one(connector, graph, user, decline):
    identity = sign_in(connector, graph, user=user, decline=decline)

    assert identity.email is None
    assert identity.email_verified is False
    assert identity.name and identity.subject
    [me] = graph.requests_to("/me")
    assert "email" in me.params["fields"]


def test_the_graph_version_and_endpoints_come_from_config(open_connector, graph):
    connector = open_connector(graph_version="v19.0",
                               dialog_url="https://m.facebook.com/{version}/dialog/oauth")

    started = connector.start(state=STATE, nonce="n", callback_url=CALLBACK, link=False)
    assert started.go.url.startswith("https://m.facebook.com/v19.0/dialog/oauth?")
    sign_in(connector, graph)
    assert {r.version for r in graph.received} == {"v19.0"}


# -- refusals -----------------------------------------------------------------------------


def test_cancelling_at_facebook_is_denied(connector, graph):
    fails("denied", connector, graph, deny=True)

    assert graph.received == []


def test_a_callback_for_another_state_is_invalid(connector, graph):
    started = connector.start(state=STATE, nonce="n", callback_url=CALLBACK, link=False)
    params = {**graph.authorize(started.go.url, user="alice"), "state": "st_someone_else"}

    with pytest.raises(ConnectorError) as caught:
        connector.finish(params=params, kept=started.keep, callback_url=CALLBACK)
    assert caught.value.kind == "invalid"
    assert graph.received == []


@pytest.mark.parametrize("params", [
    {"state": STATE},
    {"state": STATE, "code": ""},
    {"state": STATE, "code": "has space"},
    {"state": STATE, "error": "server_error", "error_code": "1349048"},
    {"code": "AQ-a-real-looking-code"},
    {"state": "", "error": "access_denied", "error_reason": "user_denied"},
], ids=["no-code", "empty-code", "bad-code", "other-dialog-error", "no-state",
        "denial-without-state"])
def test_a_callback_without_its_state_or_a_usable_code_is_invalid(connector, graph, params):
    kept = connector.start(state=STATE, nonce="n", callback_url=CALLBACK, link=False).keep
    with pytest.raises(ConnectorError) as caught:
        connector.finish(params=params, kept=kept, callback_url=CALLBACK)
    assert caught.value.kind == "invalid"
    assert graph.received == []


def test_a_replayed_callback_is_expired(connector, graph):
    started = connector.start(state=STATE, nonce="n", callback_url=CALLBACK, link=False)
    params = graph.authorize(started.go.url, user="alice")
    connector.finish(params=params, kept=started.keep, callback_url=CALLBACK)

    with pytest.raises(ConnectorError) as caught:
        connector.finish(params=params, kept=started.keep, callback_url=CALLBACK)
    assert caught.value.kind == "expired"
    assert "100/36009" in str(caught.value)
    assert_no_secrets(caught.value, graph)


def test_a_token_issued_to_another_app_is_invalid(connector, graph):
    # The code exchange hands back a token Facebook minted for someone else's app, for
    # the same person: only debug_token tells.
    foreign = graph.mint_token(OTHER_APP_ID, "alice")
    graph.answer("/oauth/access_token", status=200,
                 body={"access_token": foreign, "token_type": "bearer", "expires_in": 5183944})

    error = fails("invalid", connector, graph)

    assert OTHER_APP_ID in str(error)
    assert graph.requests_to("/me") == []


def test_a_token_debug_token_calls_invalid_is_refused(connector, graph):
    graph.answer("/debug_token", status=200, body={"data": {
        "app_id": APP_ID, "type": "USER", "is_valid": False, "scopes": [],
        "user_id": "10215241773831025"}})

    fails("invalid", connector, graph)
    assert graph.requests_to("/me") == []


def test_a_page_token_is_not_a_sign_in(connector, graph):
    graph.answer("/debug_token", status=200, body={"data": {
        "app_id": APP_ID, "type": "PAGE", "is_valid": True, "scopes": [],
        "user_id": "10215241773831025"}})

    fails("invalid", connector, graph)


def test_me_answering_for_another_user_than_the_token_is_invalid(connector, graph):
    graph.answer("/me", status=200, body={"id": "10099887766554433", "name": "Bob Ito"})

    fails("invalid", connector, graph)


@pytest.mark.parametrize("proof", [
    lambda secret, token: hmac.new(b"not-the-secret", token.encode(),
                                   hashlib.sha256).hexdigest(),
    lambda secret, token: hashlib.sha256(token.encode()).hexdigest(),
    lambda secret, token: "",
], ids=["wrong-key", "plain-hash", "empty"])
def test_graph_refuses_me_without_the_right_appsecret_proof(connector, graph, monkeypatch,
                                                            proof):
    monkeypatch.setattr(facebook, "appsecret_proof", proof)

    error = fails("invalid", connector, graph)

    assert "GraphMethodException 100" in str(error)
    assert "appsecret_proof" in str(error)


def test_a_wrong_app_secret_fails_and_is_never_shown(open_connector, graph):
    connector = open_connector(app_secret="wrong-secret-0123456789abcdef")

    error = fails("invalid", connector, graph)

    assert "client secret" in str(error)
    assert "wrong-secret" not in str(error)
    assert graph.requests_to("/me") == []


def test_an_expired_token_is_expired(connector, graph):
    graph.expire_tokens()

    error = fails("expired", connector, graph)

    assert "190" in str(error)
    assert graph.requests_to("/me") == []


def test_a_token_that_expires_before_me_is_expired(connector, graph):
    graph.answer("/me", status=400, body={"error": {
        "message": "Error validating access token: Session has expired on Tuesday.",
        "type": "OAuthException", "code": 190, "error_subcode": 463}})

    error = fails("expired", connector, graph)

    assert "OAuthException 190/463" in str(error)


# -- an upstream in trouble -----------------------------------------------------------


def test_graph_down_is_unavailable(open_connector, graph):
    connector = open_connector(graph_url=f"http://127.0.0.1:{free_port()}/{{version}}")

    error = fails("unavailable", connector, graph)

    assert "/oauth/access_token" in str(error)


@pytest.mark.parametrize(("path", "status", "body", "headers"), [
    ("/oauth/access_token", 500, b"Internal Server Error", {}),
    ("/oauth/access_token", 503, {"error": {"message": "Service temporarily unavailable",
                                            "type": "OAuthException", "code": 2}}, {}),
    ("/debug_token", 500, {"error": {"message": "An unknown error occurred",
                                     "type": "OAuthException", "code": 1}}, {}),
    ("/me", 502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}),
    ("/me", 400, {"error": {"message": "(#4) Application request limit reached",
                            "type": "OAuthException", "code": 4}}, {}),
    ("/me", 400, {"error": {"message": "Please retry", "type": "OAuthException",
                            "code": 100, "is_transient": True}}, {}),
    ("/debug_token", 200, b"not json", {}),
    ("/debug_token", 200, [1, 2, 3], {}),
    ("/debug_token", 200, {"nodata": True}, {}),
    ("/oauth/access_token", 200, {"token_type": "bearer"}, {}),
    ("/oauth/access_token", 302, b"", {"Location": "https://elsewhere.example/"}),
    ("/me", 404, b"", {}),
    ("/me", 200, b"{" + b" " * (70 * 1024) + b"}", {}),
], ids=["exchange-500", "exchange-503-code-2", "debug-500", "me-502-html", "me-rate-limit",
        "me-transient", "not-json", "not-an-object", "no-data", "no-token", "redirect",
        "me-404", "oversized"])
def test_graph_in_trouble_is_unavailable(connector, graph, path, status, body, headers):
    graph.answer(path, status=status, body=body, headers=headers)

    fails("unavailable", connector, graph)


def test_a_redirect_is_not_followed(connector, graph):
    graph.answer("/debug_token", status=307, headers={"Location": graph.url("/v25.0/me")})

    fails("unavailable", connector, graph)

    assert [r.path for r in graph.received] == ["/oauth/access_token", "/debug_token"]


def test_a_slow_graph_is_unavailable(open_connector, graph):
    connector = open_connector(timeout=0.3)
    graph.delay = 3.0

    error = fails("unavailable", connector, graph)

    assert "0.3 s" in str(error)


# -- configuration ------------------------------------------------------------------------


def test_the_app_secret_never_shows_in_repr(connector):
    assert APP_SECRET not in repr(connector.config)
    assert APP_SECRET not in repr(connector)


@pytest.mark.parametrize(("changes", "message"), [
    ({"app_id": 1234567890}, "app_id"),
    ({"app_id": "my-app"}, "app_id"),
    ({"app_secret": ""}, "app_secret"),
    ({"graph_version": "19"}, "graph_version"),
    ({"graph_url": "http://graph.facebook.com/{version}"}, "https"),
    ({"dialog_url": "ftp://www.facebook.com/{version}/dialog/oauth"}, "https"),
    ({"graph_url": "https://graph.facebook.com/{version}?debug=all"}, "query"),
    ({"graph_url": "https://graph.facebook.com/{api}"}, "placeholder"),
    ({"scopes": ()}, "scopes"),
    ({"scopes": ("email", "user posts")}, "scopes"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": True}, "timeout"),
], ids=["app-id-int", "app-id-name", "no-secret", "version", "http", "ftp", "query",
        "placeholder", "no-scopes", "bad-scope", "zero-timeout", "bool-timeout"])
def test_a_bad_config_is_refused(changes, message):
    values = {"app_id": APP_ID, "app_secret": APP_SECRET, **changes}
    with pytest.raises(ValueError, match=message) as caught:
        facebook.Config(**values)
    assert APP_SECRET not in str(caught.value)


def test_production_refuses_a_plain_http_graph(app, graph):
    settings = app.extensions["idp.settings"].replace(environment="production")
    config = facebook.Config(app_id=APP_ID, app_secret=APP_SECRET, graph_url=graph.graph_url)

    with pytest.raises(SettingsError, match="graph_url must use https"):
        facebook.open("facebook", config, settings)
    defaults = facebook.Config(app_id=APP_ID, app_secret=APP_SECRET)
    assert facebook.open("facebook", defaults, settings).config.graph == \
        "https://graph.facebook.com/v25.0"


# -- the stand-in itself ------------------------------------------------------------------


def test_the_stand_in_refuses_me_without_a_proof_and_accepts_the_right_one(graph):
    import requests

    token = graph.mint_token(APP_ID, "alice")
    me = graph.url("/v25.0/me")
    right = hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()

    missing = requests.get(me, params={"access_token": token}, timeout=5)
    wrong = requests.get(me, params={"access_token": token, "appsecret_proof": "0" * 64},
                         timeout=5)
    good = requests.get(me, params={"access_token": token, "appsecret_proof": right},
                        timeout=5)

    assert (missing.status_code, missing.json()["error"]["code"]) == (400, 100)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, 100)
    assert good.json() == {"id": "10215241773831025", "name": "Alice Sato"}


def test_the_stand_in_dialog_refuses_an_unregistered_redirect_uri(connector, graph):
    started = connector.start(state=STATE, nonce="n", callback_url="https://evil.example/x",
                              link=False)
    with pytest.raises(ValueError, match="redirect_uri"):
        graph.authorize(started.go.url, user="alice")
