"""Signing-key lifecycle (next -> current -> retired -> pruned) and the published JWKS.

Keys live as one JSON file each in ``keys_dir``; private keys are AES-GCM encrypted at rest
with a key-encryption key stretched by HKDF. Every worker keeps a parsed copy in memory and
re-reads the directory when its mtime changes (checked at most once a second), so a rotation
made by ``idp keys rotate`` is seen everywhere without a restart.

Why the ``next`` state: a key is published in the JWKS for at least ``keys_next_min_age``
(longer than the JWKS cache max-age) before it signs, so no relying party ever sees a
signature from a key missing in its cached JWKS. Retired keys stay published until every
token they signed has expired.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwk
from joserfc.errors import SecurityWarning

# RFC 9864 deprecates the polymorphic "EdDSA" name in favour of "Ed25519". Clients still
# register "EdDSA" (OIDC Registration, and this product's contract), and our EdDSA keys are
# always Ed25519, so the name is unambiguous here; the warning would only fill the logs.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

ALGS = ("RS256", "ES256", "EdDSA")
STATES = ("next", "current", "retired")
_RELOAD_INTERVAL = 1.0


class KeyStoreError(Exception):
    """An operator-facing key lifecycle problem (message says what to do)."""


def _kek(secret: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"idp-signing-keys", info=b"kek-v1"
    ).derive(secret.encode("utf-8"))
    return AESGCM(key)


def _generate(alg: str):
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyStoreError(f"unsupported algorithm {alg}")


_KEY_TYPES = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}


@dataclass
class SigningKey:
    kid: str
    alg: str
    state: str
    created_at: int
    activated_at: int | None
    retired_at: int | None
    key: Any  # joserfc key with the private part
    public_jwk: dict[str, Any]

    def record(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "state": self.state,
            "created_at": self.created_at,
            "activated_at": self.activated_at,
            "retired_at": self.retired_at,
        }


class KeyStore:
    """The on-disk key store; all mutations hold an exclusive lock on ``.lock``."""

    def __init__(self, directory: Path, kek_secret: str) -> None:
        self.dir = Path(directory)
        self._aead = _kek(kek_secret)

    # -- reading -------------------------------------------------------------------------
    def version(self) -> int:
        try:
            return self.dir.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def load(self) -> list[SigningKey]:
        keys = []
        if not self.dir.exists():
            return keys
        for path in sorted(self.dir.glob("*.key.json")):
            data = json.loads(path.read_text())
            blob = base64.b64decode(data["private"])
            pem = self._aead.decrypt(blob[:12], blob[12:], data["kid"].encode())
            key = jwk.import_key(pem, _KEY_TYPES[data["alg"]])
            public = key.as_dict(private=False)
            public.update(kid=data["kid"], alg=data["alg"], use="sig")
            keys.append(
                SigningKey(
                    kid=data["kid"],
                    alg=data["alg"],
                    state=data["state"],
                    created_at=data["created_at"],
                    activated_at=data.get("activated_at"),
                    retired_at=data.get("retired_at"),
                    key=key,
                    public_jwk=public,
                )
            )
        return keys

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _path(self, kid: str) -> Path:
        return self.dir / f"{kid}.key.json"

    def _write(self, record: dict[str, Any], private_pem: bytes | None = None) -> None:
        path = self._path(record["kid"])
        if private_pem is None:
            record["private"] = json.loads(path.read_text())["private"]
        else:
            nonce = os.urandom(12)
            ct = self._aead.encrypt(nonce, private_pem, record["kid"].encode())
            record["private"] = base64.b64encode(nonce + ct).decode()
        # Write-then-rename: readers never see half a key, and the directory mtime changes.
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def _create(self, alg: str, state: str, now: int) -> dict[str, Any]:
        private = _generate(alg)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key = jwk.import_key(pem, _KEY_TYPES[alg])
        kid = key.thumbprint()
        record = {
            "kid": kid,
            "alg": alg,
            "state": state,
            "created_at": now,
            "activated_at": now if state == "current" else None,
            "retired_at": None,
        }
        self._write(dict(record), pem)
        return record

    def rotate(self, *, now: int, next_min_age: int, force: bool = False) -> list[str]:
        """Promote next -> current, current -> retired, and publish a new next, per algorithm.

        On an empty store this creates the first current and next keys. Refuses when a
        ``next`` key has been published for less than ``next_min_age`` unless ``force``.
        """
        lines: list[str] = []
        with self._locked():
            keys = self.load()
            by_alg = {alg: [k for k in keys if k.alg == alg] for alg in ALGS}
            if not force:
                young = [
                    k for k in keys
                    if k.state == "next" and now - k.created_at < next_min_age
                ]
                if young and any(k.state == "current" for k in keys):
                    wait = max(next_min_age - (now - k.created_at) for k in young)
                    raise KeyStoreError(
                        f"the next key has been published for less than {next_min_age}s; "
                        f"relying parties may not have it yet. Retry in {wait}s, or use "
                        "--force if a key is compromised."
                    )
            for alg, group in by_alg.items():
                current = [k for k in group if k.state == "current"]
                nxt = [k for k in group if k.state == "next"]
                for k in current:
                    rec = k.record() | {"state": "retired", "retired_at": now}
                    self._write(rec)
                    lines.append(f"{alg} {k.kid} current -> retired")
                if nxt:
                    promoted = nxt[0]
                    rec = promoted.record() | {"state": "current", "activated_at": now}
                    self._write(rec)
                    lines.append(f"{alg} {promoted.kid} next -> current")
                else:
                    rec = self._create(alg, "current", now)
                    lines.append(f"{alg} {rec['kid']} created as current")
                rec = self._create(alg, "next", now)
                lines.append(f"{alg} {rec['kid']} created as next")
        return lines

    def prune(self, *, now: int, keep_for: int) -> list[str]:
        """Delete retired keys whose every signed token has expired (``keep_for`` seconds)."""
        lines = []
        with self._locked():
            for k in self.load():
                if k.state == "retired" and k.retired_at is not None and (
                    now - k.retired_at >= keep_for
                ):
                    self._path(k.kid).unlink()
                    lines.append(f"{k.alg} {k.kid} pruned")
        return lines


class KeyRing:
    """A worker's parsed view of the key store, with the JWKS document precomputed."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version = -1
        self._checked = 0.0
        self._keys: list[SigningKey] = []
        self._signing: dict[str, SigningKey] = {}
        self._by_kid: dict[str, SigningKey] = {}
        self.jwks_body = b'{"keys":[]}'
        self.jwks_etag = ""

    def refresh(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._checked < _RELOAD_INTERVAL:
            return
        with self._lock:
            # Re-check under the lock: another thread may have just reloaded.
            if not force and time.monotonic() - self._checked < _RELOAD_INTERVAL:
                return
            version = self.store.version()
            if version != self._version or force:
                self._load(version)
            # Only now: a thread that skips the reload must find the keys already in place.
            self._checked = time.monotonic()

    def _load(self, version: int) -> None:
        keys = self.store.load()
        # RS256 first: RPs that pick "the first key" get the algorithm OIDC requires.
        order = {alg: i for i, alg in enumerate(ALGS)}
        state_order = {"current": 0, "next": 1, "retired": 2}
        published = sorted(keys, key=lambda k: (order[k.alg], state_order[k.state]))
        body = json.dumps({"keys": [k.public_jwk for k in published]},
                          separators=(",", ":")).encode()
        self._keys = keys
        self._signing = {k.alg: k for k in keys if k.state == "current"}
        self._by_kid = {k.kid: k for k in keys}
        self.jwks_body = body
        self.jwks_etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self._version = version

    def keys(self) -> list[SigningKey]:
        self.refresh()
        return list(self._keys)

    def signing_key(self, alg: str) -> SigningKey:
        self.refresh()
        try:
            return self._signing[alg]
        except KeyError:
            raise KeyStoreError(f"no current {alg} key: run `make keys-rotate`") from None

    def find(self, kid: str) -> SigningKey | None:
        self.refresh()
        return self._by_kid.get(kid)

    def public_keyset(self) -> jwk.KeySet:
        self.refresh()
        return jwk.KeySet.import_key_set(json.loads(self.jwks_body))

    @property
    def algorithms(self) -> list[str]:
        self.refresh()
        return [alg for alg in ALGS if alg in self._signing]
