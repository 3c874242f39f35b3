"""SMTP sender: ``smtp://[user:pass@]host[:port][?starttls=true]`` or ``smtps://`` (TLS)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from . import MailError


@dataclass(frozen=True)
class SMTPSender:
    host: str
    port: int
    username: str = ""
    password: str = ""
    #: ``smtps``: TLS from the first byte (port 465).
    implicit_tls: bool = False
    #: Upgrade a plain connection with STARTTLS (port 587); refused if the server lacks it.
    starttls: bool = False
    timeout: float = 10.0
    keeps_bodies: bool = False

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 10.0) -> SMTPSender:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"smtp_url must be smtp:// or smtps:// with a host: {url!r}")
        query = parse_qs(parts.query)
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            implicit_tls=implicit,
            starttls=query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
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
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise MailError(f"recipients refused: {', '.join(refused)}")
