"""A real OpenLDAP ``slapd`` on loopback with TLS, for the LDAP connector's tests.

``Slapd(workdir)`` makes a CA and a server certificate (``cryptography``), writes a
``slapd.conf`` (mdb database ``dc=example,dc=com``), starts Debian's ``/usr/sbin/slapd`` in
the foreground on spare ports and loads a service account. Tests add their own users with
``add_user``. The server behaves as the connector must not trust a directory to behave:

- clear-text simple binds are refused (``security simple_bind=1``): only ldaps:// or
  StartTLS carry a password;
- an *unauthenticated* bind (a DN with an empty password) succeeds, as on many AD
  domain controllers (``allow bind_anon_dn``), so a connector that forgets to refuse an
  empty password would let anyone in;
- only authenticated clients may read entries, nobody may read ``userPassword``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ldap
import ldap.modlist
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SLAPD = "/usr/sbin/slapd"
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")
SUFFIX = "dc=example,dc=com"
PEOPLE = f"ou=people,{SUFFIX}"


def slapd_path() -> str:
    """The slapd binary; ``FileNotFoundError`` when the Debian package is not installed."""
    path = shutil.which("slapd") or SLAPD
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{SLAPD} (Debian package slapd)")
    return path


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its key and self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pem())
        return path


def make_ca(name: str = "Test LDAP CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Authority(key, cert)


def issue_server_cert(ca: Authority, *, dns: tuple[str, ...],
                      ips: tuple[str, ...]) -> tuple[bytes, bytes]:
    """A server certificate for ``dns`` and ``ips`` signed by ``ca``: (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns[0])]))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def ssha(password: str) -> str:
    """``{SSHA}`` as slapd stores a password (salted SHA-1; fine for a throwaway server)."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode("utf-8") + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode("ascii")


def _spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slapd:
    """One slapd for a test session. Used as a context manager; ``stop()`` kills it.

    ``starttls_url`` (ldap://, StartTLS required for binds), ``ldaps_url``, and
    ``mismatch_url``: ldaps:// on 127.0.0.2, an address the certificate does not name.
    """

    root_dn = f"cn=admin,{SUFFIX}"
    reader_dn = f"cn=reader,ou=services,{SUFFIX}"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.root_password = secrets.token_urlsafe(12)
        self.reader_password = secrets.token_urlsafe(12)
        self.ca = make_ca()
        self.ca_file = self.ca.write(workdir / "ca.pem")
        cert, key = issue_server_cert(self.ca, dns=("localhost",), ips=("127.0.0.1",))
        (workdir / "server.pem").write_bytes(cert)
        (workdir / "server.key").write_bytes(key)
        (workdir / "server.key").chmod(0o600)
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: tuple[int, int] = (0, 0)

    # -- addresses ---------------------------------------------------------------------------

    @property
    def starttls_url(self) -> str:
        return f"ldap://127.0.0.1:{self.ports[0]}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ports[1]}"

    @property
    def mismatch_url(self) -> str:
        return f"ldaps://127.0.0.2:{self.ports[1]}"

    # -- life cycle --------------------------------------------------------------------------

    def _config(self) -> str:
        d = self.dir
        includes = "\n".join(f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS)
        return f"""{includes}
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {d}/ca.pem
TLSCertificateFile {d}/server.pem
TLSCertificateKeyFile {d}/server.key
# No password over a clear connection: a simple bind needs TLS (ldaps:// or StartTLS).
security simple_bind=1
# As on many AD domain controllers: a DN with an empty password "binds" (unauthenticated).
allow bind_anon_dn

database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{self.root_dn}"
rootpw {ssha(self.root_password)}
directory {d}/db
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by users read
    by * none
"""

    def start(self, *, attempts: int = 3) -> Slapd:
        binary = slapd_path()
        (self.dir / "db").mkdir(exist_ok=True)
        conf = self.dir / "slapd.conf"
        conf.write_text(self._config())
        last = ""
        for _ in range(attempts):  # a spare port can be taken between probe and bind
            self.ports = (_spare_port(), _spare_port())
            urls = f"{self.starttls_url}/ {self.ldaps_url}/ {self.mismatch_url}/"
            log = (self.dir / "slapd.log").open("wb")
            # -d 0: stay in the foreground (a child we can kill), without debug output.
            self.process = subprocess.Popen([binary, "-f", str(conf), "-h", urls, "-d", "0"],
                                            stdout=log, stderr=subprocess.STDOUT)
            log.close()
            if self._wait_ready():
                self._load()
                return self
            self.stop()
            last = (self.dir / "slapd.log").read_text(errors="replace")
        raise RuntimeError(f"slapd did not start: {last[-2000:]}")

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                self.admin().unbind_s()
                return True
            except ldap.LDAPError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Slapd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- data --------------------------------------------------------------------------------

    def connect(self) -> ldap.ldapobject.LDAPObject:
        """A StartTLS connection that trusts the test CA, not yet bound."""
        conn = ldap.initialize(self.starttls_url)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5.0)
        conn.set_option(ldap.OPT_TIMEOUT, 5.0)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self.ca_file))
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.start_tls_s()
        return conn

    def admin(self) -> ldap.ldapobject.LDAPObject:
        """A connection bound as the root DN (no access control)."""
        conn = self.connect()
        conn.simple_bind_s(self.root_dn, self.root_password)
        return conn

    def _add(self, conn: ldap.ldapobject.LDAPObject, dn: str,
             attrs: dict[str, list[str]]) -> None:
        conn.add_s(dn, ldap.modlist.addModlist(
            {k: [v.encode("utf-8") for v in vs] for k, vs in attrs.items()}))

    def _load(self) -> None:
        conn = self.admin()
        try:
            self._add(conn, SUFFIX, {"objectClass": ["dcObject", "organization"],
                                     "dc": ["example"], "o": ["Example"]})
            for ou in ("people", "services", "moved"):
                self._add(conn, f"ou={ou},{SUFFIX}",
                          {"objectClass": ["organizationalUnit"], "ou": [ou]})
            self._add(conn, self.reader_dn, {
                "objectClass": ["organizationalRole", "simpleSecurityObject"],
                "cn": ["reader"], "userPassword": [ssha(self.reader_password)]})
        finally:
            conn.unbind_s()

    def add_user(self, uid: str, password: str | None, *, mail: str | None = None,
                 display_name: str | None = None, parent: str = PEOPLE,
                 object_class: str = "inetOrgPerson") -> str:
        """Add a person (``object_class``: ``inetOrgPerson``, or e.g. ``account`` for an
        entry that is no person); its DN. slapd gives it an ``entryUUID``."""
        dn = f"uid={ldap.dn.escape_dn_chars(uid)},{parent}"
        attrs: dict[str, list[str]] = {"objectClass": [object_class], "uid": [uid]}
        if object_class == "inetOrgPerson":
            attrs.update(cn=[display_name or uid], sn=[uid])
            if mail:
                attrs["mail"] = [mail]
            if display_name:
                attrs["displayName"] = [display_name]
        elif object_class == "account":
            attrs["objectClass"].append("simpleSecurityObject")
        if password is not None:
            attrs["userPassword"] = [ssha(password)]
        conn = self.admin()
        try:
            self._add(conn, dn, attrs)
        finally:
            conn.unbind_s()
        return dn

    def entry_uuid(self, dn: str) -> str:
        conn = self.admin()
        try:
            [(_, attrs)] = conn.search_s(dn, ldap.SCOPE_BASE, attrlist=["entryUUID"])
        finally:
            conn.unbind_s()
        return attrs["entryUUID"][0].decode("ascii")

    def rename(self, dn: str, new_rdn: str, *, parent: str | None = None) -> str:
        """Rename (and move) an entry; its new DN."""
        conn = self.admin()
        try:
            conn.rename_s(dn, new_rdn, newsuperior=parent, delold=1)
        finally:
            conn.unbind_s()
        return f"{new_rdn},{parent or dn.split(',', 1)[1]}"
