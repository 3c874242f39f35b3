"""What an upstream identity provider is to the rest of the provider (ARCHITECTURE
"Connectors"): a small interface, one module per type, nothing else knows a type string.

Two capabilities (Dex's ``CallbackConnector`` / ``PasswordConnector``):

- ``CallbackConnector`` (OIDC, Facebook, SAML): ``start`` says where to send the browser
  and what to keep in the login flow until the upstream sends it back; ``finish`` turns
  the callback's parameters and what was kept into a verified ``UpstreamIdentity``.
- ``PasswordConnector`` (LDAP): ``authenticate`` checks a user name and password against
  the directory.

A connector never builds a Flask response and never touches the database: the
blueprint (``idp/endpoints/connect.py``) does both. Every failure is a
``ConnectorError`` whose ``kind`` names the page the user sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: Why an upstream sign-in failed, as the user is told (message ``connector_error_<kind>``).
ERROR_KINDS = (
    "unavailable",  # the upstream did not answer, or answered garbage (5xx, timeout, TLS)
    "denied",       # the user declined consent or cancelled at the upstream
    "invalid",      # a bad signature, wrong audience/issuer/nonce/state, tampered response
    "expired",      # an expired token or assertion, a replayed response
    "credentials",  # (password connectors) wrong user name or password
)


class ConnectorError(Exception):
    """An upstream sign-in that failed. ``kind`` is one of ``ERROR_KINDS``; the message
    is for the log only (it may name the upstream's reason, never a secret)."""

    def __init__(self, kind: str, message: str = "") -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown connector error kind {kind!r}")
        super().__init__(message or kind)
        self.kind = kind


@dataclass(frozen=True)
class UpstreamIdentity:
    """A verified upstream account. A user is found by ``(connector, issuer, subject)``
    only, never by the e-mail address."""

    connector: str
    issuer: str
    subject: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    #: What the upstream says about how the user signed in there (its ``amr``), if any.
    amr: tuple[str, ...] = ()


@dataclass(frozen=True)
class Redirect:
    """Send the browser to ``url`` (GET)."""

    url: str


@dataclass(frozen=True)
class AutoPost:
    """Send the browser to ``url`` by an auto-submitted POST form (SAML HTTP-POST)."""

    url: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Started:
    """Where the browser goes, and what the flow keeps for ``finish`` (JSON-safe)."""

    go: Redirect | AutoPost
    keep: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class CallbackConnector(Protocol):
    #: The connector's id in config, URLs and linked identities (``google``,
    #: ``adfs-xxxxxxxxxxxxxxxxxx``).
    id: str

    def start(self, *, state: str, nonce: str, callback_url: str, link: bool) -> Started:
        """Where to send the browser. ``link``: the user is about to link this upstream
        account, so ask the upstream for its account chooser / re-authentication where it
        has one (Google and Microsoft ``prompt=select_account``, Facebook
        ``auth_type=reauthenticate``, SAML ``ForceAuthn``)."""
        ...

    def finish(self, *, params: Mapping[str, str], kept: Mapping[str, Any],
               callback_url: str) -> UpstreamIdentity:
        """Verify the callback (``params``: its query or form) against what ``start``
        kept; raise ``ConnectorError``."""
        ...


@runtime_checkable
class PasswordConnector(Protocol):
    id: str

    def authenticate(self, username: str, password: str) -> UpstreamIdentity:
        """Check the credentials against the directory; raise ``ConnectorError``
        (``credentials`` for a wrong user name or password, the same for both)."""
        ...
