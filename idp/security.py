"""Small security primitives: random tokens, SHA-256 at rest, constant-time checks, argon2id."""

from __future__ import annotations

import hashlib
import hmac
import secrets
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
    # argon2-cffi's defaults are RFC 9106's second recommendation (argon2id, 64 MiB, t=3),
    # within OWASP's guidance.
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches; a missing hash still costs one hash (no timing oracle)."""
    if not stored:
        _hasher().hash(password)
        return False
    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher().check_needs_rehash(stored)
