"""Which route a request came by (SPEC §7): the internet, or the carrier's fibre line.

Each brand has an internet host and a line host. A request on the line host carries the
caller's line ID (and the carrier's area) in headers the carrier's gateway sets; only
gateways at the configured addresses may assert them. The same headers from any other
address, or on the internet host, are ignored and logged: anyone can send a header.
A request on the line host without a trusted line ID is still the line route, with no
line: the line step refuses it with a page that says what the admin must check.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from functools import lru_cache

from flask import current_app, request

from . import lines
from .web import brand, client_address

log = logging.getLogger(__name__)

INTERNET = "internet"
LINE = "line"
#: Carrier areas a gateway may name; West Japan shows the "notify line information" page.
CARRIERS = ("east", "west")


@dataclass(frozen=True)
class Route:
    kind: str = INTERNET
    #: The line ID a trusted gateway asserted (line route only).
    line_id: str | None = None
    #: ``east`` or ``west``, as the gateway said.
    carrier: str | None = None


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network,
                                               ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def trusted_gateway(address: str) -> bool:
    cfg = current_app.extensions["idp.settings"]
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(peer in net for net in _networks(tuple(cfg.line_gateways)))


def detect() -> Route:
    """The route of the current request."""
    cfg = current_app.extensions["idp.settings"]
    asserted = request.headers.get(cfg.line_id_header)
    carrier = request.headers.get(cfg.line_carrier_header)
    on_line_host = request.host.lower() == brand().line_host.lower()
    address = client_address()
    if not on_line_host:
        if asserted is not None:
            log.warning("line ID header ignored on the internet host from %s", address)
        return Route(INTERNET)
    if not trusted_gateway(address):
        if asserted is not None:
            log.warning("line ID header ignored from %s: not a configured gateway", address)
        return Route(LINE)
    if asserted is None or not lines.valid(asserted.strip()):
        log.warning("line host request from gateway %s without a valid line ID", address)
        return Route(LINE)
    area = (carrier or "").strip().lower()
    return Route(LINE, asserted.strip(), area if area in CARRIERS else None)
