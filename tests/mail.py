"""A real SMTP server on loopback (aiosmtpd) and a mailbox that reads what it received."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller

_URL = re.compile(r"https?://[^\s<>]+")


@dataclass
class Mail:
    to: str
    subject: str
    body: str
    message: EmailMessage

    @property
    def links(self) -> list[str]:
        return _URL.findall(self.body)

    @property
    def link(self) -> str:
        """The one link of a ticket mail, as a path + query the test client can open."""
        links = self.links
        assert len(links) == 1, f"expected one link in {self.subject!r}: {links}"
        parts = urlsplit(links[0])
        return parts.path + ("?" + parts.query if parts.query else "")

    @property
    def host(self) -> str:
        return urlsplit(self.links[0]).netloc


def settle(timeout: float = 10.0) -> None:
    """Wait for mails being delivered beside a response (``deliver_in_background``), so
    what a test reads next is what the request caused."""
    from idp.notify.mail import background

    background.settle(timeout)


@dataclass
class Mailbox:
    """Everything the SMTP server accepted, in order. ``fail`` makes it refuse mail."""

    messages: list[Mail] = field(default_factory=list)
    fail: bool = False
    #: While set, the server holds every message until the event is set (a slow server).
    hold: threading.Event | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.fail:
            return "451 4.3.0 mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        while self.hold is not None and not self.hold.is_set():
            await asyncio.sleep(0.01)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        with self._lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append(Mail(rcpt, str(msg["Subject"]), text, msg))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Mail]:
        settle()
        return [m for m in self.messages if m.to == address]

    def last(self, address: str) -> Mail:
        mails = self.to(address)
        assert mails, f"no mail to {address}; got {[m.to for m in self.messages]}"
        return mails[-1]

    def clear(self) -> None:
        self.messages.clear()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_smtp() -> tuple[Controller, Mailbox]:
    box = Mailbox()
    # aiosmtpd checks readiness by connecting to its port, so it needs a real one, not 0.
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    return controller, box
