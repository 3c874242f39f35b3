"""Notifications to users: mail now (SMS senders join with the step-up chain).

A sender is a small Protocol with one method; ``open_mail_sender`` picks SMTP when
``smtp_url`` is set and the development outbox otherwise.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class MailError(Exception):
    """The message could not be handed to the mail server.

    ``permanent`` when retrying cannot help (the server refused the recipient with a 5xx
    reply): the message is given up at once instead of being retried for a day.
    """

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class MailSender(Protocol):
    #: Whether delivered bodies are kept for the outbox page (development only).
    keeps_bodies: bool

    def send(self, message: EmailMessage) -> None:
        """Hand the message over, or raise ``MailError``."""
        ...


def open_mail_sender(smtp_url: str, *, timeout: float) -> MailSender:
    """The sender for ``smtp_url``; a malformed URL is a configuration error at start-up."""
    if smtp_url:
        from ..settings import SettingsError
        from .smtp import SMTPSender

        try:
            return SMTPSender.from_url(smtp_url, timeout=timeout)
        except ValueError as exc:
            raise SettingsError([str(exc)]) from None
    from .outbox import OutboxSender

    return OutboxSender()
