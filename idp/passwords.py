"""Password policy (SPEC §3): length, character classes, not the email, not a common one.

Passwords are NFKC-normalised before checking *and* before hashing, so a password typed
with full-width characters on a Japanese keyboard is the same password as its ASCII form.
"""

from __future__ import annotations

import gzip
import unicodedata
from functools import lru_cache
from pathlib import Path

MIN_LENGTH = 8
#: Long passphrases are welcome; the cap only keeps one hash bounded in cost.
MAX_LENGTH = 256
MIN_CLASSES = 3
_COMMON_LIST = Path(__file__).with_name("data") / "common-passwords.txt.gz"


class PolicyViolation(ValueError):
    """Why a password was refused: ``key`` is an ``idp.i18n`` message key."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The shipped list, loaded once per process on first use (about 6 MB in memory)."""
    with gzip.open(_COMMON_LIST, "rt", encoding="utf-8") as fh:
        return frozenset(line.rstrip("\n").lower() for line in fh if line.strip())


def classes(password: str) -> int:
    """How many of upper case, lower case, digits and symbols appear."""
    upper = any(c.isupper() for c in password)
    lower = any(c.islower() for c in password)
    digit = any(c.isdigit() for c in password)
    symbol = any(not c.isalnum() for c in password)
    return upper + lower + digit + symbol


def check(password: str, *, email: str = "") -> str:
    """The normalised password if it meets the policy; else raise ``PolicyViolation``."""
    password = normalise(password)
    if len(password) < MIN_LENGTH:
        raise PolicyViolation("password_too_short")
    if len(password) > MAX_LENGTH:
        raise PolicyViolation("password_too_long")
    if classes(password) < MIN_CLASSES:
        raise PolicyViolation("password_classes")
    lowered = password.lower()
    email = normalise(email).strip().lower()
    if email and (lowered == email or lowered == email.split("@", 1)[0]):
        raise PolicyViolation("password_is_email")
    if lowered in common_passwords():
        raise PolicyViolation("password_common")
    return password


def check_new(password: str, confirmation: str, *, email: str = "") -> str:
    """A new password typed twice (every form that sets one): the normalised password if
    both match and it meets the policy; else ``PolicyViolation``."""
    if normalise(password) != normalise(confirmation):
        raise PolicyViolation("password_mismatch")
    return check(password, email=email)
