"""Notifications to users: mail now (SMS senders join with the step-up chain).

A sender is a small Protocol with one method; ``open_mail_sender`` picks SMTP when
``smtp_url`` is set and the development outbox otherwise.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class MailError(Exception):
    """The message could not be handed to the mail server; it will be retried."""


class MailSender(Protocol):
    #: Whether delivered bodies are kept for the outbox page (development only).
    keeps_bodies: bool

    def send(self, message: EmailMessage) -> None:
        """Hand the message over, or raise ``MailError``."""
        ...


def open_mail_sender(smtp_url: str, *, timeout: float) -> MailSender:
    if smtp_url:
        from .smtp import SMTPSender

        return SMTPSender.from_url(smtp_url, timeout=timeout)
    from .outbox import OutboxSender

    return OutboxSender()
