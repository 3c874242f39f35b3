"""Development outbox: mail is "sent" by keeping it in the queue table for /dev/outbox."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage


@dataclass(frozen=True)
class OutboxSender:
    keeps_bodies: bool = True

    def send(self, message: EmailMessage) -> None:
        return None
