"""Small pieces every outbound HTTP/SMTP client of the provider shares (SMS gateway, mail
server, upstream connectors): what counts as loopback, and errors fit for a log line."""

from __future__ import annotations

import ipaddress

import requests


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: where plain http/smtp may be allowed outside
    production (a local adapter, the tests' peers)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NoNetrc(requests.auth.AuthBase):
    """Leaves the request as built: an explicit ``auth`` stops requests reading ~/.netrc
    and replacing our Authorization header with whatever credentials it finds there."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def root_cause(exc: BaseException) -> str:
    """The innermost OS-level reason (``Connection refused``, a certificate error), not
    urllib3's long chain, which repeats the URL and its query (codes, tokens)."""
    reason = type(exc).__name__
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short; the bound guards against a cycle
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            reason = seen.strerror
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) \
                else None
        seen = inner or seen.__cause__ or seen.__context__
    return reason
