"""Small security primitives: random tokens, SHA-256 at rest, constant-time checks, argon2id."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def random_token(nbytes: int = 32) -> str:
    """URL-safe random token: 32 bytes = 256 bits, beyond any guessing."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    """Digest for high-entropy secrets at rest; a slow hash would add nothing but latency."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def matches_hash(value: str, digest: str | None) -> bool:
    """Constant-time comparison of ``value`` against a stored SHA-256 hex digest."""
    if not digest:
        return False
    return hmac.compare_digest(sha256_hex(value), digest)


_FAST_HASHING = False


def use_fast_password_hashing() -> None:
    """Test environment only: cheap argon2id parameters, so the suite is not 90% hashing."""
    global _FAST_HASHING
    _FAST_HASHING = True
    _hasher.cache_clear()


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    if _FAST_HASHING:
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    # OWASP's first argon2id setting (19 MiB, t=2, p=1): about 21 ms of one core here, so
    # a sign-in stays well under its 60 ms CPU budget while a GPU guesser still pays for
    # 19 MiB per guess. Hashes made with other parameters are upgraded at sign-in.
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def _nfkc(password: str) -> str:
    # Full-width input from a Japanese keyboard is the same password (idp.passwords).
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return _hasher().hash(_nfkc(password))


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches; a missing hash still costs one hash (no timing oracle)."""
    password = _nfkc(password)
    if not stored:
        _hasher().hash(password)
        return False
    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher().check_needs_rehash(stored)


def _aead(secret: str, purpose: str):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"idp seal " + purpose.encode()).derive(secret.encode())
    return AESGCM(key)


def seal(plaintext: bytes, *, secret: str, purpose: str) -> bytes:
    """AES-256-GCM under a key derived for ``purpose``: a value that must not rest in clear.

    The purpose is also the associated data, so a value sealed for one use cannot be
    unsealed as another.
    """
    nonce = secrets.token_bytes(12)
    return nonce + _aead(secret, purpose).encrypt(nonce, plaintext, purpose.encode())


def unseal(sealed: bytes, *, secret: str, purpose: str) -> bytes:
    return _aead(secret, purpose).decrypt(sealed[:12], sealed[12:], purpose.encode())
