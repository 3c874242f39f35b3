"""SMS sending through an HTTP gateway: one JSON POST per message.

Operators point the provider at their carrier's SMS API, or at a small adapter in front
of it, that accepts exactly this request:

``POST <url>``, where ``url`` is the configured gateway URL without its user information
(``https://gateway.example/v1/messages``). No query string is sent, and redirects are not
followed.

Headers:

- ``Content-Type: application/json; charset=utf-8``
- ``Accept: application/json``
- ``Authorization``: ``Basic base64(user:password)`` when the URL carries them
  (``https://user:pass@gateway.example/v1/messages``, percent-decoded, so ``p%40ss`` is
  ``p@ss``), or ``Bearer <token>`` when a token is configured instead; absent when
  neither is configured.

Body: a UTF-8 JSON object with exactly three string members, non-ASCII text unescaped::

    {"to": "+819012345678", "text": "【コーデックストレージ】認証コード: 482913", "sender": "codec"}

- ``to``: the recipient in E.164 (``+``, country code, national number; no spaces).
- ``text``: the message, ready to deliver as is; the gateway splits or concatenates it.
- ``sender``: the brand id the message is sent for (``codec``, ``work``), so a gateway
  serving several brands can pick the sender name or account per brand.

Response: any 2xx status means the gateway accepted the message; the body is ignored.
Every other outcome is an ``SmsError``: 4xx other than 408 and 429 is ``permanent`` (the
gateway refuses this request and will again, e.g. a number it cannot reach, or wrong
credentials); 3xx, 408, 429, 5xx, a timeout (no answer within the configured seconds,
while connecting or between bytes of the answer) and connection or TLS failures are
temporary. Nothing is retried here: a user waiting for a code asks for a new one, and a
timed-out request may still have been delivered.

The gateway must be ``https://`` with a certificate that verifies against the CA bundle
(``requests``' default, or ``REQUESTS_CA_BUNDLE``); plain ``http://`` only to a loopback
address (``localhost``, ``127.0.0.0/8``, ``::1``), e.g. an adapter on the same machine.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlsplit

import requests

from ..netutil import NoNetrc, is_loopback, root_cause

#: E.164: ``+``, then up to 15 digits, the first not 0.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
#: What may follow ``Bearer`` in a header (RFC 6750 §2.1 b64token, loosely).
_TOKEN = re.compile(r"[\x21-\x7e]+")


class SmsError(Exception):
    """The gateway did not accept the message; the text never contains credentials.

    ``permanent`` when sending the same request again cannot help (a 4xx answer).
    """

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class SmsSender(Protocol):
    def send(self, to_e164: str, text: str, *, sender: str) -> None:
        """Hand ``text`` to the gateway for ``to_e164`` on behalf of brand ``sender``,
        or raise ``SmsError``."""
        ...


@dataclass(frozen=True)
class HttpGatewaySender:
    """Sends each message as the JSON POST described in this module's docstring."""

    #: Where to POST: scheme, host, port and path, never user information.
    url: str
    #: HTTP Basic credentials from the configured URL's user information.
    username: str = ""
    #: Kept out of ``repr`` so a logged sender never shows it.
    password: str = field(default="", repr=False)
    #: Bearer token, the alternative to Basic credentials; also kept out of ``repr``.
    token: str = field(default="", repr=False)
    #: Seconds to wait for the connection and for each read of the answer.
    timeout: float = 5.0

    @classmethod
    def from_url(cls, url: str, *, token: str = "", timeout: float = 5.0) -> HttpGatewaySender:
        """Parse the gateway URL; ``ValueError`` names what is wrong (never a credential)."""
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        try:
            port = parts.port
        except ValueError:
            port = None
            bad_port = True
        else:
            bad_port = False
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        shown = parts._replace(netloc=netloc, query="", fragment="").geturl()
        if parts.scheme not in ("https", "http") or not host:
            raise ValueError(f"sms_url must be an https:// URL with a host: {shown!r}")
        if bad_port:
            raise ValueError(f"sms_url has an invalid port: {shown!r}")
        if parts.query or parts.fragment:
            # A query string is where API keys end up, and then in every log line that
            # shows the URL: credentials go in the user information or the token.
            raise ValueError(f"sms_url takes no query or fragment: {shown!r}")
        if parts.scheme == "http" and not is_loopback(host):
            # The request carries the credentials and the one-time code in clear.
            raise ValueError(f"sms_url must use https:// (plain http:// only to a loopback "
                             f"address): {shown!r}")
        username = unquote(parts.username or "")
        password = unquote(parts.password or "")
        if ":" in username:
            raise ValueError("sms_url: the user name cannot contain ':' (HTTP Basic)")
        if token and not _TOKEN.fullmatch(token):
            raise ValueError("sms token must be printable ASCII without spaces")
        if token and (username or password):
            raise ValueError("sms_url: give credentials in the URL or as a token, not both")
        if timeout <= 0:
            raise ValueError("sms timeout must be a positive number of seconds")
        return cls(url=shown, username=username, password=password, token=token,
                   timeout=timeout)

    def send(self, to_e164: str, text: str, *, sender: str) -> None:
        if not _E164.fullmatch(to_e164):
            raise ValueError("to_e164 must be an E.164 number such as +819012345678")
        body = json.dumps({"to": to_e164, "text": text, "sender": sender},
                          ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.username or self.password:
            pair = f"{self.username}:{self.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        try:
            # An explicit ``auth`` stops requests replacing our Authorization header with
            # ~/.netrc credentials; proxies and CA bundles from the environment still
            # apply, as operators expect. Redirects are not followed: a 3xx would turn the
            # POST into a GET elsewhere.
            response = requests.post(self.url, data=body, headers=headers,
                                     timeout=self.timeout, allow_redirects=False,
                                     auth=NoNetrc())
        except requests.Timeout as exc:
            raise SmsError(f"SMS gateway {self.url}: no answer within "
                           f"{self.timeout:g} s") from exc
        except requests.RequestException as exc:
            raise SmsError(f"SMS gateway {self.url}: cannot connect "
                           f"({root_cause(exc)})") from exc
        with response:
            status, reason = response.status_code, response.reason
        if 200 <= status < 300:
            return
        # Only the status: the answer may echo the request, and with it the one-time code.
        raise SmsError(f"SMS gateway {self.url}: HTTP {status} {reason or ''}".rstrip(),
                       permanent=400 <= status < 500 and status not in (408, 429))


def open_sms_sender(url: str, token: str = "", *, timeout: float) -> SmsSender:
    """The sender for the gateway at ``url``; a malformed URL is a start-up error."""
    from ..settings import SettingsError

    if not url:
        raise SettingsError(["sms_url is required to send SMS codes"])
    try:
        return HttpGatewaySender.from_url(url, token=token, timeout=timeout)
    except ValueError as exc:
        raise SettingsError([str(exc)]) from None


@dataclass(frozen=True)
class OutboxSmsSender:
    """Development without a gateway: the message is kept in ``sms_outbox`` (in the
    caller's transaction) and listed at /dev/outbox."""

    def send(self, to_e164: str, text: str, *, sender: str) -> None:
        from ..clock import now
        from ..db import db
        from ..models import SmsOutboxMessage

        db.session.add(SmsOutboxMessage(to=to_e164, text=text, sender=sender,
                                        created_at=now()))
