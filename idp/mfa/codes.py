"""One-time codes sent over a channel (SMS, mail): issue with limits, check once.

What the SMS and e-mail factors share. A code is 6 digits, valid ``code_ttl`` seconds and
for ``max_tries`` wrong tries (then void: a new one must be sent), used once
(``store.take``: of two submissions of the right code only one wins). One live code per
user and channel, bound to its destination (a code sent to the old number or address is
void once it changed). Sends are ``resend_after`` seconds apart and ``sends_per_hour`` per
account and per destination, so a sign-in page is no message cannon. Codes live only in
the store, as a SHA-256 salted with the user id: a flushed store loses them (fail closed)
and a dump shows no code. Time is the app clock's (``idp.clock``), not the store's TTL.

Store only, never the ORM: on SQLite the store is another connection, and callers do
these calls before their ORM writes.
"""

from __future__ import annotations

import hmac
import secrets
import unicodedata
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flask import current_app

from ..clock import now
from ..ratelimit import Limit
from ..security import sha256_hex

LENGTH = 6


@dataclass(frozen=True)
class CodeConfig:
    """The settings of a factor that sends codes (``[mfa.factors.<type>]``)."""

    #: Seconds a code stays valid (SPEC §4: 5 minutes).
    code_ttl: int = 300
    #: Wrong tries a code survives; the next try voids it (a new code must be sent).
    max_tries: int = 5
    #: Seconds before another code can be sent to the same account or destination.
    resend_after: int = 60
    #: Codes per hour to one destination, and to one account.
    sends_per_hour: int = 5

    def __post_init__(self) -> None:
        for name in ("code_ttl", "max_tries", "resend_after", "sends_per_hour"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @property
    def minutes(self) -> str:
        return str(max(1, self.code_ttl // 60))


@dataclass(frozen=True)
class Refusal:
    """Why no code was sent: a message key, the HTTP status and when to try again."""

    error: str
    status: int
    retry_after: int | None = None
    #: Seconds to wait, for the message text.
    wait: str = ""

    def page(self) -> dict[str, Any]:
        """Keyword arguments for a step's page helper."""
        return {"error": self.error, "status": self.status, "retry_after": self.retry_after,
                "wait": self.wait}


class Checked(Enum):
    RIGHT = "right"
    #: A wrong code (counted against the user by the chain).
    WRONG = "wrong"
    #: No live code: expired, never sent, used, or sent to another destination.
    EXPIRED = "mfa_code_expired"
    #: The code was voided by too many wrong tries.
    VOIDED = "mfa_code_too_many_tries"


def _store():
    return current_app.extensions["idp.store"]


def digits(typed: str | None) -> str | None:
    """The code as typed: full-width digits (a Japanese IME) and spaces are accepted."""
    if not typed or len(typed) > 32:
        return None
    cleaned = "".join(unicodedata.normalize("NFKC", typed).split())
    if len(cleaned) != LENGTH or not (cleaned.isascii() and cleaned.isdigit()):
        return None
    return cleaned


class SentCodes:
    """The codes of one channel (``sms``, ``email``) under one ``CodeConfig``."""

    def __init__(self, channel: str, config: CodeConfig):
        self.channel = channel
        self.config = config

    def _key(self, user_id: str) -> str:
        return f"mfa-code:{self.channel}:{sha256_hex(user_id)}"

    def _wait_key(self, subject: str) -> str:
        return f"mfa-code-wait:{self.channel}:{sha256_hex(subject)}"

    @staticmethod
    def _digest(user_id: str, code: str) -> str:
        # Salted with the user id: the store's digests are no lookup table of codes.
        return sha256_hex(f"{user_id}:{code}")

    def issue(self, user_id: str, destination: str) -> str | Refusal:
        """A new code for ``destination``, replacing the live one, or why not."""
        c = self.config
        t = now()
        store = _store()
        for subject in (user_id, destination):
            waited = store.get(self._wait_key(subject))
            if waited and t - int(waited.get("at", 0)) < c.resend_after:
                wait = c.resend_after - (t - int(waited["at"]))
                return Refusal("mfa_code_wait", 429, wait, str(wait))
        for bucket, subject in (("destination", destination), ("account", user_id)):
            limit = Limit(f"mfa-code-{self.channel}-{bucket}", c.sends_per_hour, 3600)
            if limit.hit(subject) > c.sends_per_hour:
                return Refusal("mfa_code_limit", 429, limit.retry_after())
        for subject in (user_id, destination):
            store.put(self._wait_key(subject), {"at": t}, c.resend_after + 60)
        code = "".join(secrets.choice("0123456789") for _ in range(LENGTH))
        key = self._key(user_id)
        store.put(key, {"digest": self._digest(user_id, code), "to": sha256_hex(destination),
                        "expires_at": t + c.code_ttl}, c.code_ttl + 60)
        store.delete(key + ":tries")
        return code

    def not_sent(self, user_id: str, destination: str) -> None:
        """The channel refused the code: the user may ask again at once (the code stays
        valid, as a timed-out message may still arrive)."""
        _store().delete(self._wait_key(user_id), self._wait_key(destination))

    def live(self, user_id: str, destination: str) -> dict[str, Any] | None:
        record = _store().get(self._key(user_id))
        if record is None or record.get("expires_at", 0) <= now() \
                or record.get("to") != sha256_hex(destination):
            return None
        return record

    def check(self, user_id: str, destination: str, typed: str | None) -> Checked:
        store = _store()
        key = self._key(user_id)
        record = self.live(user_id, destination)
        if record is None:
            return Checked.EXPIRED
        if store.incr(key + ":tries", self.config.code_ttl + 60) > self.config.max_tries:
            store.delete(key)
            return Checked.VOIDED
        code = digits(typed)
        if code is None or not hmac.compare_digest(self._digest(user_id, code),
                                                   record["digest"]):
            return Checked.WRONG
        # Single use: of two submissions of the right code only one takes it.
        return Checked.RIGHT if store.take(key) is not None else Checked.EXPIRED
