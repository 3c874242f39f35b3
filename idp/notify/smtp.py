"""SMTP sender: ``smtp://[user:pass@]host[:port][?starttls=true]`` or ``smtps://`` (TLS).

User and password are percent-decoded, so ``p%40ss`` is ``p@ss``. The URL is parsed
strictly: an unknown parameter or a ``starttls`` value that is not a yes/no word is a
start-up error, because a typo such as ``starttls=ture`` would otherwise send the
password in clear without anyone noticing.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from ..netutil import is_loopback
from . import MailError

_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")
_PARAMS = ("starttls",)


@dataclass(frozen=True)
class SMTPSender:
    host: str
    port: int
    username: str = ""
    #: Kept out of ``repr`` so a logged sender never shows it.
    password: str = field(default="", repr=False)
    #: ``smtps``: TLS from the first byte (port 465).
    implicit_tls: bool = False
    #: Upgrade a plain connection with STARTTLS (port 587); refused if the server lacks it.
    starttls: bool = False
    timeout: float = 10.0
    keeps_bodies: bool = False

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 10.0) -> SMTPSender:
        """Parse ``smtp_url``; ``ValueError`` names what is wrong (never the password)."""
        parts = urlsplit(url)
        shown = parts._replace(netloc=parts.hostname or "").geturl()
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"smtp_url must be smtp:// or smtps:// with a host: {shown!r}")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError(f"smtp_url takes no path or fragment: {shown!r}")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"smtp_url has an invalid port: {shown!r}") from None
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - set(_PARAMS))
        if unknown:
            raise ValueError(f"smtp_url: unknown parameter(s) {', '.join(unknown)} "
                             f"(known: {', '.join(_PARAMS)})")
        starttls = False
        if "starttls" in query:
            value = query["starttls"][-1].lower()
            if value not in _YES + _NO:
                raise ValueError(f"smtp_url: starttls must be true or false, got {value!r}")
            starttls = value in _YES
        implicit = parts.scheme == "smtps"
        if implicit and starttls:
            raise ValueError("smtp_url: smtps:// is TLS from the start; starttls is for smtp://")
        username = unquote(parts.username or "")
        if username and not (implicit or starttls) and not is_loopback(parts.hostname):
            # AUTH over a plain connection would put the password on the network in clear.
            raise ValueError("smtp_url: credentials need TLS: use smtps:// or ?starttls=true "
                             "(plain smtp:// with a password only to a loopback relay)")
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 25),
            username=username,
            password=unquote(parts.password or ""),
            implicit_tls=implicit,
            starttls=starttls,
            timeout=timeout,
        )

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        try:
            if self.implicit_tls:
                conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port,
                                                     timeout=self.timeout, context=context)
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with conn:
                if self.starttls:
                    conn.starttls(context=context)
                if self.username:
                    conn.login(self.username, self.password)
                refused = conn.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            # 5xx for the recipient (no such mailbox, domain refused) will not change on
            # retry; 4xx (greylisting, full mailbox) may.
            raise MailError(f"recipient refused: {_replies(exc.recipients)}",
                            permanent=bool(codes) and all(c >= 500 for c in codes)) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise MailError(f"recipient refused: {_replies(refused)}",
                            permanent=all(code >= 500 for code, _ in refused.values()))


def _replies(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {reply.decode('utf-8', 'replace')}"
                     for address, (code, reply) in refused.items())
