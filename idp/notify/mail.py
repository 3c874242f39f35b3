"""Mail: render per brand and language, queue durably, deliver, retry.

The action that causes a mail (an invitation, a lock, a reset request) and the queued
message are committed in one transaction, so neither exists without the other. Delivery
happens after the commit; a failure leaves the message queued with a growing delay, and
``idp mail deliver`` (or the next successful delivery in any worker) retries it. Bodies
can carry ticket links, so they are sealed at rest and dropped once delivered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid

from flask import current_app, render_template
from sqlalchemy import select, update

from ..clock import now
from ..db import db
from ..models import MailMessage
from ..security import seal, unseal
from ..settings import Brand
from . import MailError, MailSender

_PURPOSE = "mail body"
#: Delivery attempts before a message is given up as ``failed`` (about a day of retries).
MAX_ATTEMPTS = 10
#: While one worker is delivering a message, others leave it alone this long.
_LEASE = 120


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def _settings():
    return current_app.extensions["idp.settings"]


def sender() -> MailSender:
    return current_app.extensions["idp.mail"]


def render(kind: str, *, brand: Brand, lang: str, **context: object) -> Rendered:
    """Subject and body of ``kind``; a brand may override any template with its own file.

    The template's first line is ``Subject: ...``; the 【brand name】 prefix is added here
    so that no template can forget it.
    """
    names = [f"mail/{brand.id}/{kind}.{lang}.txt", f"mail/{kind}.{lang}.txt",
             f"mail/{brand.id}/{kind}.ja.txt", f"mail/{kind}.ja.txt"]
    text = render_template(names, brand=brand, brand_name=brand.name(lang), lang=lang,
                           **context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"mail template {kind}.{lang} must start with 'Subject: '")
    subject = f"【{brand.name(lang)}】{first[len('Subject: '):].strip()}"
    return Rendered(subject, body.lstrip("\n"))


def queue(kind: str, *, to: str, brand: Brand, lang: str, **context: object) -> MailMessage:
    """Render and add the message to the session; the caller's commit queues it."""
    rendered = render(kind, brand=brand, lang=lang, **context)
    message = MailMessage(
        kind=kind, brand=brand.id, lang=lang, to=to, subject=rendered.subject,
        body_enc=seal(rendered.body.encode("utf-8"), secret=_settings().secret_key,
                      purpose=_PURPOSE),
        status="pending", attempts=0, next_attempt_at=0, created_at=now(),
    )
    db.session.add(message)
    return message


def body_of(message: MailMessage) -> str:
    if message.body_enc is None:
        return ""
    return unseal(message.body_enc, secret=_settings().secret_key,
                  purpose=_PURPOSE).decode("utf-8")


def _email(message: MailMessage) -> EmailMessage:
    settings = _settings()
    brand = settings.brands.get(message.brand)
    email = EmailMessage()
    display = brand.name(message.lang) if brand else ""
    email["From"] = formataddr((display, settings.mail_from))
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    email["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(body_of(message), charset="utf-8")
    return email


def _claim(message_id: int, t: int) -> MailMessage | None:
    """Take the message for delivery unless another worker holds it."""
    result = db.session.execute(
        update(MailMessage)
        .where(MailMessage.id == message_id, MailMessage.status == "pending",
               MailMessage.next_attempt_at <= t)
        .values(next_attempt_at=t + _LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if result.rowcount != 1:
        return None
    return db.session.get(MailMessage, message_id, populate_existing=True)


def _backoff(attempts: int) -> int:
    return min(60 * 2 ** (attempts - 1), 6 * 3600)


def deliver_one(message_id: int) -> bool:
    """Try to deliver one queued message now; True when it was handed over."""
    t = now()
    message = _claim(message_id, t)
    if message is None:
        current = db.session.get(MailMessage, message_id)
        return current is not None and current.status == "sent"
    out = sender()
    message.attempts += 1
    try:
        out.send(_email(message))
    except MailError as exc:
        message.last_error = str(exc)[:2000]
        if message.attempts >= MAX_ATTEMPTS:
            message.status = "failed"
            current_app.logger.error("mail %s to %s given up: %s", message.id, message.to, exc)
        else:
            message.next_attempt_at = t + _backoff(message.attempts)
            current_app.logger.warning("mail %s to %s not sent (attempt %s): %s",
                                       message.id, message.to, message.attempts, exc)
        db.session.commit()
        return False
    message.status = "sent"
    message.sent_at = t
    message.last_error = ""
    if not out.keeps_bodies:
        message.body_enc = None
    db.session.commit()
    return True


def deliver(*messages: MailMessage, catch_up: int = 5) -> bool:
    """Deliver freshly committed messages; True when all went out.

    After a success the mail server is evidently up, so up to ``catch_up`` older due
    messages ride along: delivery recovers by itself when the server comes back.
    """
    ok = all([deliver_one(m.id) for m in messages])
    if ok and catch_up:
        deliver_due(limit=catch_up)
    return ok


def deliver_due(*, limit: int = 100) -> tuple[int, int]:
    """Deliver messages whose retry time has come; returns (sent, not sent)."""
    t = now()
    ids = db.session.scalars(
        select(MailMessage.id)
        .where(MailMessage.status == "pending", MailMessage.next_attempt_at <= t)
        .order_by(MailMessage.id).limit(limit)
    ).all()
    sent = sum(deliver_one(i) for i in ids)
    return sent, len(ids) - sent


def run_worker(*, interval: float, once: bool = False) -> None:
    """``idp mail deliver --loop``: retry due messages until stopped."""
    while True:
        deliver_due()
        db.session.remove()
        if once:
            return
        time.sleep(interval)
