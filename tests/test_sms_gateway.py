"""SMS gateway sender: the documented JSON POST against a real loopback HTTP server."""

from __future__ import annotations

import base64
import socket
import time

import pytest

from idp.notify.sms import HttpGatewaySender, SmsError, open_sms_sender
from idp.settings import SettingsError
from tests.peers.sms_gateway import SmsGateway

PASSWORD = "s3cret-p@ss"
TOKEN = "tok_9f8e7d6c5b4a"
TEXT = "【codec】認証コード: 4F7K2Q"


@pytest.fixture
def gateway():
    with SmsGateway() as server:
        yield server


def basic_sender(gateway: SmsGateway, *, timeout: float = 5.0) -> HttpGatewaySender:
    """Credentials in the URL, the password percent-encoded as an operator writes it."""
    return HttpGatewaySender.from_url(gateway.url(userinfo="acct:s3cret-p%40ss"), timeout=timeout)


def assert_no_credentials(error: BaseException) -> None:
    for shown in (str(error), repr(error)):
        assert PASSWORD not in shown
        assert "s3cret" not in shown
        assert TOKEN not in shown
        assert "acct" not in shown


def free_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_message_is_posted_as_json_with_basic_auth_from_the_url(gateway):
    basic_sender(gateway).send("+819012345678", TEXT, sender="codec")

    [request] = gateway.received
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.json == {"to": "+819012345678", "text": TEXT, "sender": "codec"}
    assert TEXT.encode() in request.raw  # UTF-8, not \u escapes
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"acct:{PASSWORD}"


def test_a_message_is_posted_with_a_bearer_token(gateway):
    open_sms_sender(gateway.url(), TOKEN, timeout=5).send("+819012345678", TEXT, sender="work")

    [request] = gateway.received
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json["sender"] == "work"


def test_a_netrc_file_does_not_replace_the_configured_token(gateway, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login other password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))

    open_sms_sender(gateway.url(), TOKEN, timeout=5).send("+819012345678", TEXT, sender="codec")

    assert gateway.received[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_gateway_without_credentials_gets_no_authorization_header(gateway):
    open_sms_sender(gateway.url(), timeout=5).send("+819012345678", TEXT, sender="codec")

    assert "authorization" not in gateway.received[0].headers


@pytest.mark.parametrize(("status", "permanent"), [
    (500, False), (503, False), (429, False), (408, False), (400, True), (401, True),
    (302, False),
], ids=["500", "503", "429", "408", "400", "401", "redirect"])
def test_a_refusal_by_the_gateway_is_an_sms_error_without_credentials(gateway, status,
                                                                       permanent):
    gateway.status = status
    # A gateway that echoes the request must not put the code or the secrets into our logs.
    gateway.body = f'{{"error": "bad", "echo": "{TEXT} {PASSWORD} {TOKEN}"}}'.encode()

    with pytest.raises(SmsError) as failed:
        basic_sender(gateway).send("+819012345678", TEXT, sender="codec")

    assert f"HTTP {status}" in str(failed.value)
    assert failed.value.permanent is permanent
    assert "4F7K2Q" not in str(failed.value)
    assert_no_credentials(failed.value)
    assert len(gateway.received) == 1  # a redirect is not followed


def test_a_token_never_appears_in_a_refusal(gateway):
    gateway.status = 500
    with pytest.raises(SmsError) as failed:
        open_sms_sender(gateway.url(), TOKEN, timeout=5).send("+819012345678", TEXT,
                                                              sender="codec")
    assert_no_credentials(failed.value)


def test_a_gateway_that_does_not_answer_in_time_is_an_sms_error(gateway):
    gateway.delay = 5.0
    started = time.monotonic()

    with pytest.raises(SmsError, match=r"no answer within 0\.3 s") as failed:
        basic_sender(gateway, timeout=0.3).send("+819012345678", TEXT, sender="codec")

    assert time.monotonic() - started < 3
    assert not failed.value.permanent
    assert_no_credentials(failed.value)


def test_a_gateway_that_refuses_the_connection_is_an_sms_error():
    url = f"http://acct:s3cret-p%40ss@127.0.0.1:{free_port()}/v1/messages"

    with pytest.raises(SmsError, match="Connection refused") as failed:
        HttpGatewaySender.from_url(url, timeout=2).send("+819012345678", TEXT, sender="codec")

    assert not failed.value.permanent
    assert_no_credentials(failed.value)


@pytest.mark.parametrize("to", ["09012345678", "+81 90 1234 5678", "+0123", ""],
                         ids=["national", "spaces", "leading-zero", "empty"])
def test_a_recipient_that_is_not_e164_is_a_programming_error_and_nothing_is_sent(gateway, to):
    with pytest.raises(ValueError):
        basic_sender(gateway).send(to, TEXT, sender="codec")
    assert gateway.received == []


@pytest.mark.parametrize("url", [
    "https://gateway.example/v1/messages",
    "https://acct:pw@gateway.example:8443/v1/messages",
    "http://127.0.0.1:8080/sms",
    "http://localhost:8080/sms",
    "http://[::1]:8080/sms",
], ids=["https", "https-basic-port", "http-127", "http-localhost", "http-ipv6-loopback"])
def test_https_or_a_loopback_adapter_is_accepted(url):
    sender = open_sms_sender(url, timeout=5)
    assert "pw" not in repr(sender)
    assert "@" not in sender.url


@pytest.mark.parametrize(("url", "token", "problem"), [
    ("http://gateway.example/v1/messages", "", "must use https://"),
    ("http://acct:s3cret-p%40ss@gateway.example/v1/messages", "", "must use https://"),
    ("http://10.0.0.5/v1/messages", "", "must use https://"),
    ("http://127.0.0.1.nip.io/v1/messages", "", "must use https://"),
    ("ftp://gateway.example/v1/messages", "", "https:// URL with a host"),
    ("gateway.example/v1/messages", "", "https:// URL with a host"),
    ("https:///v1/messages", "", "https:// URL with a host"),
    ("https://gateway.example/v1/messages?api_key=s3cret-p@ss", "", "no query"),
    ("https://gateway.example:99999/v1", "", "invalid port"),
    ("https://acct:s3cret-p%40ss@gateway.example/v1", TOKEN, "not both"),
    ("https://gateway.example/v1", "tok en", "printable ASCII"),
    ("", "", "sms_url is required"),
], ids=["http-internet", "http-with-password", "http-private-address", "loopback-lookalike",
        "ftp", "no-scheme", "no-host", "query", "bad-port", "basic-and-token", "token-space",
        "empty"])
def test_an_unsafe_or_malformed_gateway_url_stops_the_start(url, token, problem):
    with pytest.raises(SettingsError) as refused:
        open_sms_sender(url, token, timeout=5)
    assert problem in str(refused.value)
    assert_no_credentials(refused.value)


def test_a_logged_sender_never_shows_its_secrets(gateway):
    for sender in (basic_sender(gateway), open_sms_sender(gateway.url(), TOKEN, timeout=5)):
        assert PASSWORD not in repr(sender)
        assert TOKEN not in repr(sender)
