"""The LDAP connector against a real slapd with TLS (tests/peers/slapd.py)."""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from idp.connectors import ldap as ldap_connector
from idp.connectors.base import ConnectorError, PasswordConnector
from idp.connectors.ldap import Config
from tests.conftest import _service_missing
from tests.peers.slapd import PEOPLE, SUFFIX, Slapd, make_ca, slapd_path

PASSWORD = "Directory-Pass-2026"
CONNECTION_ID = "adfs-abcdefghijklmnopqr"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory) -> Iterator[Slapd]:
    """One slapd for this module (it starts in about a tenth of a second)."""
    try:
        slapd_path()
    except FileNotFoundError as exc:
        _service_missing("slapd", exc)
    with Slapd(tmp_path_factory.mktemp("slapd")) as server:
        yield server


def config(slapd: Slapd, *, starttls: bool = False, **fields) -> Config:
    """The slapd's settings as a contract would enter them, trusting the test CA."""
    base = {"url": slapd.starttls_url if starttls else slapd.ldaps_url, "starttls": starttls,
            "base_dn": SUFFIX, "bind_dn": slapd.reader_dn,
            "bind_password": slapd.reader_password, "user_attribute": "uid",
            "object_filter": "(objectClass=inetOrgPerson)", "ca_file": str(slapd.ca_file),
            "timeout": 5.0}
    return Config(**{**base, **fields})


def connector(slapd: Slapd, **fields) -> ldap_connector.LDAPConnector:
    return ldap_connector.open(CONNECTION_ID, config(slapd, **fields))


def unique(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def kind_of(conn, username: str, password: str) -> str:
    with pytest.raises(ConnectorError) as caught:
        conn.authenticate(username, password)
    return caught.value.kind


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def person(slapd):
    """A person with a mail address and a display name; (uid, dn)."""
    uid = unique("person")
    dn = slapd.add_user(uid, PASSWORD, mail=f"{uid}@example.com", display_name="山田 太郎")
    return uid, dn


# -- signing in --------------------------------------------------------------------------------


@pytest.mark.parametrize("starttls", [False, True], ids=["ldaps", "starttls"])
def test_right_password_gives_the_entry_uuid_as_subject(slapd, person, starttls):
    uid, dn = person
    conn = connector(slapd, starttls=starttls)
    assert isinstance(conn, PasswordConnector)
    identity = conn.authenticate(uid, PASSWORD)
    assert identity.subject == slapd.entry_uuid(dn)
    assert identity.connector == identity.issuer == CONNECTION_ID
    assert identity.email == f"{uid}@example.com"
    assert identity.email_verified is False
    assert identity.name == "山田 太郎"
    assert identity.amr == ("pwd",)


def test_wrong_password_and_unknown_user_get_the_same_answer(slapd, person):
    uid, _ = person
    conn = connector(slapd)
    wrong = kind_of(conn, uid, PASSWORD + "x")
    unknown = kind_of(conn, unique("nobody"), PASSWORD)
    assert wrong == unknown == "credentials"


def test_a_user_name_typed_in_full_width_still_signs_in(slapd, person):
    uid, _ = person
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in uid)
    assert connector(slapd).authenticate(f" {full_width} ", PASSWORD).email == f"{uid}@example.com"


@pytest.mark.parametrize("password", ["", " ", "\t\n", "\u3000"],
                         ids=["empty", "space", "tab-newline", "ideographic-space"])
def test_an_empty_or_blank_password_is_refused_without_contacting_the_server(slapd, person,
                                                                            password):
    uid, dn = person
    # The hole being closed: this server, like many ADs, lets a DN with no password "bind".
    raw = slapd.connect()
    raw.simple_bind_s(dn, "")
    raw.unbind_s()
    assert kind_of(connector(slapd), uid, password) == "credentials"
    # Pointed at a closed port, the answer is still "credentials", not "unavailable":
    # nothing was sent anywhere.
    nowhere = connector(slapd, url=f"ldaps://127.0.0.1:{closed_port()}")
    assert kind_of(nowhere, uid, password) == "credentials"
    assert kind_of(nowhere, uid, PASSWORD) == "unavailable"


@pytest.mark.parametrize(("username", "password"), [
    ("", PASSWORD), ("  ", PASSWORD), ("u" * 257, PASSWORD), ("someone", "p" * 1025),
], ids=["empty-name", "blank-name", "long-name", "long-password"])
def test_empty_or_over_long_inputs_are_refused_before_any_traffic(slapd, username, password):
    nowhere = connector(slapd, url=f"ldaps://127.0.0.1:{closed_port()}")
    assert kind_of(nowhere, username, password) == "credentials"


INJECTIONS = {
    "star": "*",
    "prefix-star": "{p}*",
    "inner-star": "{p}-ad*n",
    "close-and-or": "*)(uid=*",
    "or-all": ")(|(uid=*",
    "alice-or-all": "{p}-alice)(|(uid=*",
    "admin-or-alice": "{p}-admin)(uid={p}-alice",
    "hex-escape": "{p}-ali\\63e",
    "nul": "{p}-alice\x00",
    "escaped-nul": "{p}-alice\\00",
    "backslash": "\\",
    "escaped-star": "\\2a",
    "parenthesis": "(",
}


@pytest.fixture(scope="module")
def injection_targets(slapd) -> str:
    """Two people with the same password; the prefix of their names."""
    prefix = unique("inj")
    for name in ("alice", "admin"):
        slapd.add_user(f"{prefix}-{name}", PASSWORD)
    return prefix


@pytest.mark.parametrize("pattern", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_filter_injection_never_matches_another_user(slapd, injection_targets, pattern):
    conn = connector(slapd)
    # Every target has this password: a pattern that matched anyone would sign in.
    assert kind_of(conn, pattern.format(p=injection_targets), PASSWORD) == "credentials"
    assert conn.authenticate(f"{injection_targets}-alice", PASSWORD).subject


def test_a_name_with_filter_characters_signs_in_as_exactly_that_name(slapd):
    odd = unique("a*b(c)") + "\\"
    dn = slapd.add_user(odd, PASSWORD)
    slapd.add_user(odd.replace("*", "x"), PASSWORD)
    assert connector(slapd).authenticate(odd, PASSWORD).subject == slapd.entry_uuid(dn)


def test_an_entry_that_is_no_person_cannot_sign_in(slapd):
    uid = unique("device")
    slapd.add_user(uid, PASSWORD, parent=f"ou=services,{SUFFIX}", object_class="account")
    assert kind_of(connector(slapd), uid, PASSWORD) == "credentials"


def test_an_ambiguous_user_name_is_refused_like_a_wrong_password(slapd, caplog):
    mail = f"{unique('shared')}@example.com"
    slapd.add_user(unique("twin"), PASSWORD, mail=mail)
    slapd.add_user(unique("twin"), PASSWORD, mail=mail)
    conn = connector(slapd, user_attribute="mail")
    assert kind_of(conn, mail, PASSWORD) == "credentials"
    assert "several entries" in caplog.text


def test_a_renamed_or_moved_account_keeps_its_subject(slapd, person):
    uid, dn = person
    conn = connector(slapd)
    before = conn.authenticate(uid, PASSWORD).subject
    moved = slapd.rename(dn, dn.split(",", 1)[0], parent=f"ou=moved,{SUFFIX}")
    assert moved != dn
    assert conn.authenticate(uid, PASSWORD).subject == before


# -- TLS and availability ----------------------------------------------------------------------


@pytest.mark.parametrize("starttls", [False, True], ids=["ldaps", "starttls"])
@pytest.mark.parametrize("trust", ["other-ca", "system"])
def test_a_certificate_from_an_unknown_ca_is_unavailable(slapd, person, tmp_path, caplog,
                                                         starttls, trust):
    uid, _ = person
    ca_file = str(make_ca("Someone Else").write(tmp_path / "other.pem")) \
        if trust == "other-ca" else ""
    conn = connector(slapd, starttls=starttls, ca_file=ca_file)
    assert kind_of(conn, uid, PASSWORD) == "unavailable"
    assert "certificate verify failed" in caplog.text


def test_a_certificate_for_another_host_name_is_unavailable(slapd, person, caplog):
    uid, _ = person
    assert kind_of(connector(slapd, url=slapd.mismatch_url), uid, PASSWORD) == "unavailable"
    assert "IP address mismatch" in caplog.text


@pytest.mark.parametrize("fields", [
    {"url": "ldap://dc.example.com", "starttls": False},
    {"url": "ldaps://dc.example.com", "starttls": True},
    {"url": "ldapi:///var/run/slapd.sock"},
    {"url": "ldaps://user@dc.example.com"},
    {"url": "ldaps://dc.example.com/dc=example?uid"},
    {"url": "ldaps://dc.example.com ldaps://other.example.com"},
    {"bind_password": ""},
    {"base_dn": "not a dn"},
    {"bind_dn": ""},
    {"user_attribute": "uid)(x"},
    {"id_attributes": ()},
    {"object_filter": "objectClass=person"},
    {"object_filter": "(a=b))(|(c=d)"},
    {"timeout": 0.0},
], ids=["clear-ldap", "starttls-on-ldaps", "ldapi", "userinfo", "path", "two-urls",
        "no-bind-password", "bad-base-dn", "no-bind-dn", "bad-attribute", "no-id-attribute",
        "filter-without-parentheses", "unbalanced-filter", "no-timeout"])
def test_unsafe_or_malformed_settings_are_refused_at_open(slapd, fields):
    with pytest.raises(ValueError):
        ldap_connector.open(CONNECTION_ID, config(slapd, **fields))


def test_an_unreadable_ca_file_is_refused_at_open(slapd, tmp_path):
    with pytest.raises(ValueError, match="ca_file"):
        connector(slapd, ca_file=str(tmp_path / "missing.pem"))
    (tmp_path / "garbage.pem").write_text("not a certificate")
    with pytest.raises(ValueError, match="ca_file"):
        connector(slapd, ca_file=str(tmp_path / "garbage.pem"))


@pytest.mark.parametrize("starttls", [False, True], ids=["ldaps", "starttls"])
def test_a_server_that_is_down_is_unavailable(slapd, starttls):
    scheme = "ldap" if starttls else "ldaps"
    conn = connector(slapd, url=f"{scheme}://127.0.0.1:{closed_port()}", starttls=starttls)
    assert kind_of(conn, "someone", PASSWORD) == "unavailable"


_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
#: ExtendedResponse to message 1: success with the StartTLS name, or protocolError.
STARTTLS_OK = b"\x30\x24\x02\x01\x01\x78\x1f\x0a\x01\x00\x04\x00\x04\x00\x8a\x16" + _STARTTLS_OID
STARTTLS_REFUSED = b"\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x02\x04\x00\x04\x00"


@contextlib.contextmanager
def misbehaving_server(slapd: Slapd, behaviour: str) -> Iterator[int]:
    """A loopback server that goes quiet at some point of the exchange; its port.

    ``silent``: accepts and never says a word. ``starttls-then-silent``: says yes to
    StartTLS, then never answers the TLS handshake. ``tls-then-silent``: completes TLS
    (with slapd's certificate) and never answers an LDAP request. ``starttls-refused``.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(client)
            client.settimeout(5)
            with contextlib.suppress(OSError):
                if behaviour.startswith("starttls"):
                    client.recv(64)
                    client.sendall(STARTTLS_OK if behaviour != "starttls-refused"
                                   else STARTTLS_REFUSED)
                elif behaviour == "tls-then-silent":
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    context.load_cert_chain(slapd.dir / "server.pem", slapd.dir / "server.key")
                    held.append(context.wrap_socket(client, server_side=True))
                    held[-1].recv(64)  # the service account's bind request, unanswered

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for s in [*held, listener]:
            s.close()


@pytest.mark.parametrize(("behaviour", "starttls", "reason"), [
    ("silent", False, "TLS handshake timed out"),
    ("silent", True, "timed out"),
    ("starttls-then-silent", True, "TLS handshake timed out"),
    ("tls-then-silent", False, "SERVER_DOWN"),
    ("starttls-refused", True, "StartTLS refused (result 2)"),
], ids=["ldaps-silent", "starttls-silent", "starttls-then-silent", "tls-then-silent",
        "starttls-refused"])
def test_a_server_that_goes_quiet_is_unavailable_within_the_timeout(slapd, caplog, behaviour,
                                                                    starttls, reason):
    # Debian's libldap (GnuTLS) would spin forever on a stalled TLS handshake: the
    # connector does TLS itself and bounds the whole exchange.
    with misbehaving_server(slapd, behaviour) as port:
        scheme = "ldap" if starttls else "ldaps"
        conn = connector(slapd, url=f"{scheme}://localhost:{port}", starttls=starttls,
                         timeout=1.0)
        started = time.monotonic()
        assert kind_of(conn, "someone", PASSWORD) == "unavailable"
        assert time.monotonic() - started < 3
    assert reason in caplog.text
    assert not pump_threads()


def pump_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ldap-tls-pump" and t.is_alive()]


def test_no_connection_or_thread_outlives_a_sign_in(slapd, person):
    uid, _ = person
    conn = connector(slapd)
    for password in (PASSWORD, "wrong", PASSWORD):
        with contextlib.suppress(ConnectorError):
            conn.authenticate(uid, password)
    assert not pump_threads()


def test_a_refused_service_account_is_unavailable_and_logged(slapd, person, caplog):
    uid, _ = person
    conn = connector(slapd, bind_password="not-the-service-password")
    with caplog.at_level(logging.ERROR, logger="idp.connectors.ldap"):
        assert kind_of(conn, uid, PASSWORD) == "unavailable"
    assert "service account" in caplog.text and slapd.reader_dn in caplog.text


def test_passwords_never_reach_the_log_or_the_error(slapd, person, caplog, tmp_path):
    uid, _ = person
    secret = "Secret-Canary-73"
    attempts = [
        (connector(slapd), uid, secret),                                   # wrong password
        (connector(slapd, bind_password=secret), uid, PASSWORD),           # wrong service pw
        (connector(slapd, url=f"ldaps://127.0.0.1:{closed_port()}"), uid, secret),  # down
        (connector(slapd, ca_file=str(make_ca().write(tmp_path / "o.pem"))), uid, secret),
    ]
    with caplog.at_level(logging.DEBUG):
        for conn, username, password in attempts:
            with pytest.raises(ConnectorError) as caught:
                conn.authenticate(username, password)
            assert secret not in str(caught.value) and secret not in repr(caught.value)
            assert secret not in repr(conn) and secret not in repr(conn.config)
    assert secret not in caplog.text


def test_a_microsoft_object_guid_is_shown_as_ad_shows_it():
    raw = bytes(range(16))
    assert ldap_connector._stable_id("objectGUID", [raw]) == "03020100-0504-0706-0809-0a0b0c0d0e0f"
    assert ldap_connector._stable_id("entryUUID", [b"CAB1EDFA-857E-1041-9268-8758864802F8"]) \
        == "cab1edfa-857e-1041-9268-8758864802f8"


# -- per contract ------------------------------------------------------------------------------


def test_for_contract_uses_the_contract_settings_and_its_sealed_bind_password(app, basic, slapd,
                                                                             person):
    from idp import ad_settings
    from idp.contract_settings import save_ad_settings
    from idp.db import db
    from idp.models import Contract, User

    uid, dn = person
    with app.app_context():
        values = ad_settings.ldap({"ldap_url": slapd.starttls_url, "starttls": "on",
                                   "base_dn": PEOPLE, "bind_dn": slapd.reader_dn,
                                   "bind_password": slapd.reader_password,
                                   "user_attribute": "uid"}, None)
        assert slapd.reader_password not in str(values)
        contract = db.session.get(Contract, basic.contract_id)
        connection_id = save_ad_settings(contract, values,
                                         actor=db.session.get(User, basic.owner.id))
        db.session.commit()
        conn = ldap_connector.for_contract(contract, app.extensions["idp.settings"],
                                           ca_file=str(slapd.ca_file),
                                           object_filter="(objectClass=inetOrgPerson)")
    assert conn.id == connection_id and connection_id.startswith("adfs-")
    assert conn.config.starttls is True
    assert conn.config.bind_password == slapd.reader_password
    identity = conn.authenticate(uid, PASSWORD)
    assert (identity.connector, identity.issuer) == (connection_id, connection_id)
    assert identity.subject == slapd.entry_uuid(dn)


def test_for_contract_refuses_a_contract_without_ldap_settings(app, basic):
    from idp.db import db
    from idp.models import Contract

    with app.app_context():
        contract = db.session.get(Contract, basic.contract_id)
        with pytest.raises(ValueError):
            ldap_connector.for_contract(contract)
        contract.connection_id = CONNECTION_ID
        contract.ad_settings = {"type": "adfs", "metadata_url": "https://adfs.example.com/md"}
        with pytest.raises(ValueError):
            ldap_connector.for_contract(contract)
        db.session.rollback()


def test_for_contract_refuses_a_bind_password_sealed_with_another_secret(app, basic, caplog):
    from idp import ad_settings
    from idp.db import db
    from idp.models import Contract
    from idp.security import seal

    with app.app_context():
        contract = db.session.get(Contract, basic.contract_id)
        contract.connection_id = CONNECTION_ID
        contract.ad_settings = ad_settings.ldap(
            {"ldap_url": "ldaps://dc.example.com", "base_dn": "dc=example,dc=com",
             "bind_dn": "cn=reader,dc=example,dc=com", "bind_password": "Bind-Secret-1",
             "user_attribute": "uid"}, None)
        assert ldap_connector.for_contract(contract).config.bind_password == "Bind-Secret-1"
        other = seal(b"Bind-Secret-1", secret="another-secret-" + "y" * 40,
                     purpose="ad bind password")
        contract.ad_settings = {**contract.ad_settings,
                                "bind_password_enc": base64.b64encode(other).decode()}
        with pytest.raises(ValueError):
            ldap_connector.for_contract(contract)
        db.session.rollback()
    assert "cannot be unsealed" in caplog.text and "Bind-Secret-1" not in caplog.text
