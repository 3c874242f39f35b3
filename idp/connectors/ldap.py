"""LDAP connector (``type = "ldap"``): a contract's Active Directory checked over LDAPv3 + TLS.

A ``PasswordConnector`` (``base.py``), the way Dex's LDAP connector works: bind as the
contract's service account, search ``base_dn`` for exactly one person whose
``user_attribute`` equals the typed user name (escaped, RFC 4515), then bind as that entry's
DN with the typed password. The answer is an ``UpstreamIdentity`` whose subject is the
entry's ``objectGUID`` (AD) or ``entryUUID`` (OpenLDAP, RFC 4530), never its DN: a DN
changes when an account is renamed or moved to another OU.

Security choices, each with its reason where it is made:

- an empty or blank password is refused before any network traffic (an LDAP simple bind
  with a DN and no password is an *unauthenticated* bind, which many servers report as
  success: RFC 4513 §5.1.2);
- only ldaps:// or ldap:// + StartTLS, the server certificate verified (name and chain),
  and the whole exchange bounded by ``timeout``. The TLS is Python's ``ssl``, not
  libldap's: Debian's libldap 2.5 (GnuTLS) spins at 100% CPU, forever, on a server that
  accepts TCP but stalls the TLS handshake, and the server is whatever a contract owner
  typed. libldap speaks LDAP to us over an in-process socket pair; a pump thread carries
  it through the TLS connection and closes both at the deadline (``_Tunnel``);
- an unknown user, an ambiguous one, and a wrong password get the same ``credentials``
  answer, so the form cannot be used to list accounts;
- the passwords (the user's and the service account's) never reach a log or a message.

Per contract: ``for_contract`` builds the connector from ``Contract.ad_settings`` (validated
and sealed by ``idp.ad_settings``), addressed by the contract's connection ID.
"""

from __future__ import annotations

import contextlib
import logging
import re
import selectors
import socket
import ssl
import threading
import time
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import ldap
import ldap.dn
from ldap.filter import escape_filter_chars

from .base import ConnectorError, UpstreamIdentity

if TYPE_CHECKING:
    from ..models.contract import Contract
    from ..settings import Settings

TYPE = "ldap"
log = logging.getLogger(__name__)

#: Longer user names and passwords are refused unread: no directory account has them, and a
#: megabyte "password" would only cost a bind (AD's own limits are 256 characters).
MAX_USERNAME = 256
MAX_PASSWORD = 1024
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
#: Attributes that hold a Microsoft GUID as 16 bytes in little-endian field order.
_MS_GUIDS = frozenset({"objectguid", "msds-consistencyguid"})


@dataclass(frozen=True)
class Config:
    """How to reach one directory and find its people in it."""

    #: ``ldaps://host[:port]`` or ``ldap://host[:port]`` (then ``starttls`` must be true).
    url: str
    #: Where people are searched (whole subtree), e.g. ``dc=corp,dc=example``.
    base_dn: str
    #: The service account that searches (it needs read access to the people, nothing more).
    bind_dn: str
    #: Its password (from ``ad_settings.bind_password``; never shown in ``repr``).
    bind_password: str = field(repr=False)
    #: Upgrade an ldap:// connection with StartTLS (RFC 4513 §3) before any bind.
    starttls: bool = False
    #: The attribute the user types: ``userPrincipalName`` (``user@domain``, AD's sign-in
    #: name), ``sAMAccountName``, ``uid``, ``mail``...
    user_attribute: str = "userPrincipalName"
    #: What a person is, ANDed into the search. The default is AD's: user accounts that are
    #: persons (not computers, which are ``objectClass=user`` too; not contacts).
    object_filter: str = "(&(objectCategory=person)(objectClass=user))"
    #: The stable ID of an entry, first one present wins: AD's ``objectGUID`` (16 bytes,
    #: shown as a GUID string), OpenLDAP's ``entryUUID``. It becomes the subject.
    id_attributes: tuple[str, ...] = ("objectGUID", "entryUUID")
    #: Where the e-mail address is, first one present wins (shown to confirm a link only).
    email_attributes: tuple[str, ...] = ("mail", "userPrincipalName")
    #: The person's display name ("" for none).
    name_attribute: str = "displayName"
    #: A PEM file of the CA(s) that issued the directory's certificate, trusted *instead of*
    #: the system's CAs; "" uses the system's.
    ca_file: str = ""
    #: The same as PEM text (the contract's AD settings carry it: a company CA), trusted
    #: instead of the system's CAs, together with ``ca_file`` if both are given.
    ca_pem: str = ""
    #: Seconds the whole check may take: connecting, TLS, both binds and the search.
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ldaps", "ldap") or not parts.hostname or parts.username \
                or parts.path not in ("", "/") or parts.query or parts.fragment \
                or any(c.isspace() for c in self.url):
            raise ValueError("url must be ldaps://host[:port] or ldap://host[:port]")
        try:
            parts.port  # noqa: B018 -- raises for a port out of range
        except ValueError as exc:
            raise ValueError("url has an invalid port") from exc
        # A password never crosses the network in clear: ldap:// only with StartTLS.
        if parts.scheme == "ldap" and not self.starttls:
            raise ValueError("ldap:// needs starttls = true (or use ldaps://)")
        if parts.scheme == "ldaps" and self.starttls:
            raise ValueError("starttls is for ldap://; ldaps:// is TLS already")
        for name in ("base_dn", "bind_dn"):
            value = getattr(self, name)
            if not value or not ldap.dn.is_dn(value):
                raise ValueError(f"{name} must be a distinguished name")
        # An empty service password would be an unauthenticated (anonymous) bind.
        if not self.bind_password:
            raise ValueError("bind_password is required")
        names = (self.user_attribute, *self.id_attributes, *self.email_attributes,
                 *([self.name_attribute] if self.name_attribute else []))
        if not self.id_attributes or not all(_ATTRIBUTE.match(n) for n in names):
            raise ValueError("attribute names must be LDAP attribute names "
                             "(and id_attributes must name at least one)")
        if not _balanced(self.object_filter):
            raise ValueError("object_filter must be one parenthesised LDAP filter")
        if not 0 < self.timeout <= 120:
            raise ValueError("timeout must be between 0 and 120 seconds")


def _balanced(text: str) -> bool:
    """A loose check that ``text`` is one parenthesised filter (the server parses it)."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, c in enumerate(text):
        if c == "\\":
            continue
        depth += (c == "(") - (c == ")")
        if depth < 0 or (depth == 0 and i != len(text) - 1):
            return False
    return depth == 0


def open(id: str, config: Config, settings: Settings | None = None) -> LDAPConnector:
    """The connector ``id`` (a contract's connection ID) for ``config``. ``ValueError`` for
    a ``ca_file`` that cannot be read as PEM certificates (``Config`` checked the rest)."""
    return LDAPConnector(id, config, _tls_context(config.ca_file, config.ca_pem))


def _tls_context(ca_file: str, ca_pem: str = "") -> ssl.SSLContext:
    """Certificate chain and host name verified, TLS 1.2 at least; ``ca_file`` and
    ``ca_pem`` replace the system's CAs."""
    try:
        context = ssl.create_default_context(cafile=ca_file or None, cadata=ca_pem or None)
    except (OSError, ssl.SSLError) as exc:
        where = f"ca_file {ca_file!r}" if ca_file else "ca_pem"
        raise ValueError(f"{where} cannot be read as CA certificates: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def for_contract(contract: Contract, settings: Settings | None = None,
                 **overrides: Any) -> LDAPConnector:
    """The connector of a contract whose AD settings are of type ``ldap`` (as
    ``idp.ad_settings.ldap`` stored them), addressed by its connection ID. Needs the app
    context (the bind password is unsealed with the app's secret). ``overrides``: further
    ``Config`` fields (``ca_file``, ``timeout``...). ``ValueError`` for anything else."""
    from .. import ad_settings

    stored = contract.ad_settings or {}
    if stored.get("type") != TYPE or not contract.connection_id:
        raise ValueError("the contract has no LDAP settings")
    try:
        bind_password = ad_settings.bind_password(stored)
    except Exception as exc:  # a missing key, bad base64, or InvalidTag (secret changed)
        log.error("ldap %s: the stored bind password cannot be unsealed (%s): the owner "
                  "must enter it again", contract.connection_id, type(exc).__name__)
        raise ValueError("the stored bind password cannot be unsealed") from None
    try:
        config = Config(url=stored["url"], starttls=bool(stored.get("starttls")),
                        base_dn=stored["base_dn"], bind_dn=stored["bind_dn"],
                        bind_password=bind_password,
                        user_attribute=stored["user_attribute"],
                        **({"ca_pem": stored["ca_pem"]} if stored.get("ca_pem") else {}),
                        **overrides)
    except KeyError as exc:
        raise ValueError(f"the stored LDAP settings lack {exc}") from None
    return open(contract.connection_id, config, settings)


class LDAPConnector:
    """``authenticate`` against one directory. Holds no connection: each sign-in opens its
    own (a sign-in is rare next to its TLS handshake, and nothing is shared between
    threads or workers)."""

    def __init__(self, id: str, config: Config, tls: ssl.SSLContext) -> None:
        self.id = id
        self.config = config
        self._tls = tls

    def __repr__(self) -> str:
        return f"LDAPConnector({self.id!r}, {self.config.url!r})"

    def authenticate(self, username: str, password: str) -> UpstreamIdentity:
        # NFKC: a user name typed with a Japanese IME in full width still matches. The
        # password goes to the directory exactly as typed.
        name = unicodedata.normalize("NFKC", username or "").strip()
        password = password or ""
        # Before any traffic: a bind with a DN and an empty password is an unauthenticated
        # bind, and servers that allow it (many ADs) answer "success" -- the classic hole.
        if not name or not password.strip():
            raise ConnectorError("credentials", "empty user name or password")
        if len(name) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            raise ConnectorError("credentials", "user name or password too long")
        # No directory name has control characters; NUL would end the C string early.
        if any(unicodedata.category(c) == "Cc" for c in name):
            raise ConnectorError("credentials", "control character in the user name")

        deadline = time.monotonic() + self.config.timeout
        tunnel = self._open_tunnel(deadline)
        try:
            conn = self._connect(tunnel)
            try:
                self._bind_service(conn)
                dn, attrs = self._find(conn, name)
                self._bind_user(conn, dn, password)
            finally:
                with contextlib.suppress(ldap.LDAPError):
                    conn.unbind_s()
        finally:
            tunnel.close()
        return self._identity(attrs)

    # -- steps --------------------------------------------------------------------------------

    def _open_tunnel(self, deadline: float) -> _Tunnel:
        cfg = self.config
        parts = urlsplit(cfg.url)
        host = parts.hostname or ""
        port = parts.port or (389 if cfg.starttls else 636)
        try:
            raw = socket.create_connection((host, port), timeout=_left(deadline))
        except OSError as exc:
            log.warning("ldap %s: cannot connect to %s: %s", self.id, cfg.url, exc)
            raise ConnectorError("unavailable", f"cannot connect: {exc}") from None
        try:
            # Small request, small answer: Nagle would hold each request for the server's
            # delayed ACK (40 ms a bind).
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if cfg.starttls:
                _start_tls(raw, deadline)
            # The handshake verifies the chain and that the certificate names ``host``.
            tls = self._tls.wrap_socket(raw, server_hostname=host,
                                        do_handshake_on_connect=False)
            _handshake(tls, deadline)
        except (OSError, ValueError) as exc:  # ssl.SSLError and timeouts are OSErrors
            raw.close()
            log.warning("ldap %s: no TLS with %s: %s", self.id, cfg.url, exc)
            raise ConnectorError("unavailable", f"TLS: {exc}") from None
        return _Tunnel(tls, deadline)

    def _connect(self, tunnel: _Tunnel) -> ldap.ldapobject.LDAPObject:
        fd = tunnel.take_inner()
        try:
            # The URI is never dialled: libldap speaks over ``fd`` and chases no referral.
            # It says ldaps:// all the same, so that anything libldap might ever open on
            # its own would be TLS with a verified certificate, never a clear connection.
            conn = ldap.initialize("ldaps://" + urlsplit(self.config.url).netloc,
                                   fileno=fd)
        except BaseException as exc:
            socket.close(fd)
            if isinstance(exc, ldap.LDAPError):
                raise ConnectorError("unavailable", f"libldap: {_reason(exc)}") from None
            raise
        try:
            conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
            # AD answers a search from the domain root with referrals to other partitions;
            # never chase them (a referral could point anywhere, and would carry our bind).
            conn.set_option(ldap.OPT_REFERRALS, 0)
            conn.set_option(ldap.OPT_TIMEOUT, float(self.config.timeout))
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        except ldap.LDAPError as exc:
            with contextlib.suppress(ldap.LDAPError):
                conn.unbind_s()
            raise ConnectorError("unavailable", f"libldap: {_reason(exc)}") from None
        return conn

    def _bind_service(self, conn: ldap.ldapobject.LDAPObject) -> None:
        try:
            conn.simple_bind_s(self.config.bind_dn, self.config.bind_password)
        except ldap.INVALID_CREDENTIALS:
            # The contract's settings are wrong (or the service password expired): every
            # sign-in fails until the owner fixes them, so say so loudly.
            log.error("ldap %s: the service account %s was refused (check bind DN and "
                      "password)", self.id, self.config.bind_dn)
            raise ConnectorError("unavailable", "service account refused") from None
        except ldap.LDAPError as exc:
            log.warning("ldap %s: service bind failed: %s", self.id, _reason(exc))
            raise ConnectorError("unavailable", f"service bind: {_reason(exc)}") from None

    def _find(self, conn: ldap.ldapobject.LDAPObject,
              name: str) -> tuple[str, Mapping[str, list[bytes]]]:
        cfg = self.config
        # RFC 4515 escaping: "*", "(", ")", "\" and NUL typed by the user are literal
        # characters of the value, never filter syntax (no "admin*", no ")(uid=*").
        query = f"(&{cfg.object_filter}({cfg.user_attribute}={escape_filter_chars(name)}))"
        wanted = list(dict.fromkeys((*cfg.id_attributes, *cfg.email_attributes,
                                     *([cfg.name_attribute] if cfg.name_attribute else []))))
        try:
            # sizelimit 2: one entry is an answer, two are enough to know it is ambiguous.
            results = conn.search_ext_s(cfg.base_dn, ldap.SCOPE_SUBTREE, query, wanted,
                                        timeout=cfg.timeout, sizelimit=2)
        except ldap.SIZELIMIT_EXCEEDED:
            log.warning("ldap %s: user name matches several entries", self.id)
            raise ConnectorError("credentials", "ambiguous user name") from None
        except ldap.LDAPError as exc:
            log.warning("ldap %s: search failed: %s", self.id, _reason(exc))
            raise ConnectorError("unavailable", f"search: {_reason(exc)}") from None
        # With referrals off, python-ldap lists search references as (None, [urls]).
        entries = [(dn, attrs) for dn, attrs in results if dn and isinstance(attrs, dict)]
        if len(entries) != 1:
            # Unknown and ambiguous user names get the wrong password's answer.
            if entries:
                log.warning("ldap %s: user name matches several entries", self.id)
            raise ConnectorError("credentials", "no such user" if not entries
                                 else "ambiguous user name")
        return entries[0]

    def _bind_user(self, conn: ldap.ldapobject.LDAPObject, dn: str, password: str) -> None:
        try:
            conn.simple_bind_s(dn, password)
        except (ldap.INVALID_CREDENTIALS, ldap.INAPPROPRIATE_AUTH):
            # AD says why in the message (data 52e wrong password, 533 disabled, 775 locked
            # out, 532 expired): all of them are "this password does not sign in".
            raise ConnectorError("credentials", "wrong password") from None
        except ldap.LDAPError as exc:
            log.warning("ldap %s: user bind failed: %s", self.id, _reason(exc))
            raise ConnectorError("unavailable", f"user bind: {_reason(exc)}") from None

    def _identity(self, attrs: Mapping[str, list[bytes]]) -> UpstreamIdentity:
        cfg = self.config
        values = {k.lower(): v for k, v in attrs.items()}
        subject = None
        for attr in cfg.id_attributes:
            subject = _stable_id(attr, values.get(attr.lower()) or [])
            if subject:
                break
        if not subject:
            log.error("ldap %s: the entry has none of %s (can the service account read "
                      "them?)", self.id, ", ".join(cfg.id_attributes))
            raise ConnectorError("unavailable", "no stable ID in the entry")
        email = next((v for a in cfg.email_attributes
                      if (v := _text(values.get(a.lower()))) and "@" in v), None)
        name = _text(values.get(cfg.name_attribute.lower())) if cfg.name_attribute else None
        # Issuer = the connector (the contract's connection ID), not the URL: the same
        # directory behind a new host name, port or ldaps/StartTLS switch keeps its users
        # linked, and two contracts' directories can never share an identity.
        # email_verified is False: an administrator typed the address, nobody proved it.
        return UpstreamIdentity(connector=self.id, issuer=self.id, subject=subject,
                                email=email, email_verified=False, name=name or None,
                                amr=("pwd",))


# -- TLS tunnel ---------------------------------------------------------------------------------

#: The StartTLS extended request (RFC 4511 §4.14.1) as message 1: libldap never sees it.
_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_STARTTLS_REQUEST = (b"\x30\x1d\x02\x01\x01"                  # LDAPMessage, messageID 1
                     b"\x77\x18\x80\x16" + _STARTTLS_OID)       # [APPLICATION 23] { [0] oid }


def _left(deadline: float) -> float:
    """Seconds until ``deadline``; ``TimeoutError`` once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _start_tls(sock: socket.socket, deadline: float) -> None:
    """Ask for StartTLS on a fresh connection; ``OSError`` unless the server says success."""
    sock.settimeout(_left(deadline))
    sock.sendall(_STARTTLS_REQUEST)
    head = _recv_exact(sock, 2, deadline)
    length = head[1]
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 3:
            raise OSError("StartTLS: malformed response")
        length = int.from_bytes(_recv_exact(sock, size, deadline), "big")
    if head[0] != 0x30 or length > 65536:
        raise OSError("StartTLS: malformed response")
    body = _recv_exact(sock, length, deadline)
    tag, message_id, rest = _tlv(body)
    op_tag, op, _ = _tlv(rest)
    code_tag, code, _ = _tlv(op)
    if (tag, message_id, op_tag, code_tag) != (0x02, b"\x01", 0x78, 0x0A):
        raise OSError("StartTLS: unexpected response")
    if int.from_bytes(code, "big") != 0:
        raise OSError(f"StartTLS refused (result {int.from_bytes(code, 'big')})")


def _handshake(tls: ssl.SSLSocket, deadline: float) -> None:
    """The TLS handshake, done by ``deadline`` however slowly the server drips its bytes
    (a blocking handshake would wait ``timeout`` for each read)."""
    tls.setblocking(False)
    with selectors.DefaultSelector() as selector:
        while True:
            try:
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                event = selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                event = selectors.EVENT_WRITE
            selector.register(tls, event)
            ready = selector.select(_left(deadline))
            selector.unregister(tls)
            if not ready:
                raise TimeoutError("TLS handshake timed out")


def _tlv(data: bytes) -> tuple[int, bytes, bytes]:
    """One BER element of ``data``: (tag, value, what follows); definite lengths only."""
    if len(data) < 2:
        raise OSError("StartTLS: truncated response")
    tag, length, start = data[0], data[1], 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 3 or len(data) < 2 + size:
            raise OSError("StartTLS: malformed response")
        length, start = int.from_bytes(data[2:2 + size], "big"), 2 + size
    if len(data) < start + length:
        raise OSError("StartTLS: truncated response")
    return tag, data[start:start + length], data[start + length:]


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    chunks = b""
    while len(chunks) < n:
        sock.settimeout(_left(deadline))
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise OSError("connection closed by the server")
        chunks += chunk
    return chunks


class _Tunnel:
    """libldap's end of an in-process socket pair, carried through ``tls`` by a thread.

    The pump stops, closing both sides, when either side closes or at ``deadline``: then
    libldap's next read fails (``SERVER_DOWN``) instead of waiting on a server that went
    quiet. The clear text crosses only the socket pair, inside this process.
    """

    def __init__(self, tls: ssl.SSLSocket, deadline: float) -> None:
        self._tls = tls
        self._deadline = deadline
        self._inner, self._outer = socket.socketpair()
        self._thread = threading.Thread(target=self._pump, name="ldap-tls-pump", daemon=True)
        self._thread.start()

    def take_inner(self) -> int:
        """The descriptor for libldap (which closes it at unbind)."""
        return self._inner.detach()

    def close(self) -> None:
        if self._inner.fileno() != -1:  # libldap never took it
            self._inner.close()
        # libldap's unbind closed its end: the pump forwards the UnbindRequest and stops.
        self._thread.join(timeout=0.5)
        if self._thread.is_alive():
            # shutdown, not close: the pump thread still holds the descriptor.
            with contextlib.suppress(OSError):
                self._outer.shutdown(socket.SHUT_RDWR)
            self._thread.join(timeout=1)

    def _pump(self) -> None:
        tls, outer = self._tls, self._outer
        selector = selectors.DefaultSelector()
        try:
            selector.register(tls, selectors.EVENT_READ)
            selector.register(outer, selectors.EVENT_READ)
            while (left := self._deadline - time.monotonic()) > 0:
                # Decrypted bytes may wait inside the SSL object, invisible to the selector.
                ready = [tls] if tls.pending() else [k.fileobj for k, _ in selector.select(left)]
                for source in ready:
                    if source is tls:
                        # Non-blocking: a readable TLS socket may hold no application data
                        # (a TLS 1.3 session ticket), and a blocking read would then sit
                        # on it while libldap's request waits to be forwarded.
                        tls.setblocking(False)
                        try:
                            data = tls.recv(65536)
                        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                            continue
                        target: socket.socket = outer
                    else:
                        outer.settimeout(_left(self._deadline))
                        data = outer.recv(65536)
                        target = tls
                    if not data:
                        return
                    target.settimeout(_left(self._deadline))
                    target.sendall(data)
        except OSError:  # TimeoutError included: the deadline passed
            return
        finally:
            selector.close()
            for end in (tls, outer):
                with contextlib.suppress(OSError):
                    end.close()


def _stable_id(attr: str, values: Sequence[bytes]) -> str | None:
    if not values:
        return None
    raw = values[0]
    if attr.lower() in _MS_GUIDS:
        # AD's objectGUID: 16 bytes, the first three fields little-endian; shown as AD
        # shows it ({xxxxxxxx-...}, without braces, lower case).
        return str(uuid.UUID(bytes_le=raw)) if len(raw) == 16 else None
    text = _text([raw])
    if not text:
        return None
    try:
        return str(uuid.UUID(text))  # entryUUID: one spelling (lower case)
    except ValueError:
        return text


def _text(values: Sequence[bytes] | None) -> str | None:
    if not values:
        return None
    try:
        return values[0].decode("utf-8").strip() or None
    except UnicodeDecodeError:
        return None


def _reason(exc: ldap.LDAPError) -> str:
    """What the server or libldap said, for the log (python-ldap puts it in a dict)."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    text = " ".join(str(info[k]) for k in ("desc", "info") if info.get(k))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
