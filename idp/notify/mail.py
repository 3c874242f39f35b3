"""Mail: render per brand and language, queue durably, deliver, retry.

The action that causes a mail (an invitation, a lock, a reset request) and the queued
message are committed in one transaction, so neither exists without the other. Delivery
happens after the commit; a failure leaves the message queued with a growing delay, and
``idp mail deliver`` (or the next successful delivery in any worker) retries it. Bodies
can carry ticket links, so they are sealed at rest and dropped once delivered.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, make_msgid
from queue import Full, Queue
from typing import Any

from flask import current_app, render_template
from sqlalchemy import func, or_, select, update

from ..clock import now
from ..db import db
from ..models import MailMessage
from ..security import seal, unseal
from ..settings import Brand
from . import MailError, MailSender

_PURPOSE = "mail body"
#: Delivery attempts before a message is given up as ``failed``: with the back-off below
#: the last one comes about 20 hours after the first, well inside a ticket's 14 days.
MAX_ATTEMPTS = 12
#: First retry after a minute, doubling up to six hours.
_BACKOFF_FIRST = 60
_BACKOFF_CAP = 6 * 3600
#: While one worker is delivering a message, others leave it alone this long.
_LEASE = 120
#: A message nobody has tried yet belongs this long to the request that queued it, which
#: delivers it right after its commit; a worker taking it first would make that request
#: tell its user "the mail is delayed" for a mail that is on its way.
_FRESH = 30
_BATCH = 100
#: Languages with mail templates; anything else gets Japanese (the service's first language).
LANGUAGES = ("ja", "en")


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


def _settings():
    return current_app.extensions["idp.settings"]


def sender() -> MailSender:
    return current_app.extensions["idp.mail"]


def language(lang: str | None) -> str:
    """``ja`` or ``en`` from a stored locale (``en-US`` is ``en``; empty or unknown: ``ja``)."""
    primary = (lang or "").replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else "ja"


def render(kind: str, *, brand: Brand, lang: str | None, **context: object) -> Rendered:
    """Subject and body of ``kind``; a brand may override any template with its own file.

    The template's first line is ``Subject: ...``; the 【brand name】 prefix is added here
    so that no template can forget it.
    """
    lang = language(lang)
    names = [f"mail/{brand.id}/{kind}.{lang}.txt", f"mail/{kind}.{lang}.txt",
             f"mail/{brand.id}/{kind}.ja.txt", f"mail/{kind}.ja.txt"]
    text = render_template(names, brand=brand, brand_name=brand.name(lang), lang=lang,
                           **context)
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"mail template {kind}.{lang} must start with 'Subject: '")
    subject = f"【{brand.name(lang)}】{first[len('Subject: '):].strip()}"
    return Rendered(subject, body.lstrip("\n"))


def queue(kind: str, *, to: str, brand: Brand, lang: str | None,
          **context: object) -> MailMessage:
    """Render and add the message to the session; the caller's commit queues it."""
    lang = language(lang)
    rendered = render(kind, brand=brand, lang=lang, **context)
    message = MailMessage(
        kind=kind, brand=brand.id, lang=lang, to=to, subject=rendered.subject,
        body_enc=seal(rendered.body.encode("utf-8"), secret=_settings().secret_key,
                      purpose=_PURPOSE),
        status="pending", attempts=0, next_attempt_at=0, last_error="", created_at=now(),
    )
    db.session.add(message)
    return message


def body_of(message: MailMessage) -> str:
    """The clear body; empty once it was dropped after delivery."""
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
    # RFC 3834: tells vacation responders and ticket systems not to answer.
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(body_of(message), charset="utf-8")
    return email


def _claim(message_id: int, t: int) -> MailMessage | None:
    """Take the message for delivery unless another worker holds it.

    One conditional UPDATE: of two workers racing for a message exactly one sees a row
    count of 1, on SQLite and PostgreSQL alike, so a message is handed over once.
    """
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


def backoff(attempts: int) -> int:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    return min(_BACKOFF_FIRST * 2 ** (attempts - 1), _BACKOFF_CAP)


def _give_up(message: MailMessage, error: str) -> bool:
    message.status = "failed"
    message.last_error = error[:2000]
    db.session.commit()
    current_app.logger.error("mail %s to %s given up after %s attempt(s): %s",
                             message.id, message.to, message.attempts, error)
    return False


def _attempt(message_id: int) -> bool | None:
    """One delivery attempt: True sent, False not sent, None when another worker holds or
    already finished the message (this one did nothing)."""
    t = now()
    message = _claim(message_id, t)
    if message is None:
        return None
    message.attempts += 1
    try:
        email = _email(message)
    except Exception as exc:  # e.g. a body sealed under an old secret_key
        # Nothing a retry could fix: give up now rather than fail twelve times.
        return _give_up(message, f"cannot build the message: {type(exc).__name__}: {exc}")
    out = sender()
    try:
        out.send(email)
    except MailError as exc:
        error, permanent = str(exc), exc.permanent
    except Exception as exc:  # a sender bug must not wedge the message: counted, retried
        current_app.logger.exception("mail %s: sender failed", message.id)
        error, permanent = f"{type(exc).__name__}: {exc}", False
    else:
        message.status = "sent"
        message.sent_at = t
        message.last_error = ""
        if not out.keeps_bodies:
            # The body may hold a live ticket link; once the mail is out it has no use here.
            message.body_enc = None
        db.session.commit()
        return True
    if permanent or message.attempts >= MAX_ATTEMPTS:
        return _give_up(message, error)
    message.last_error = error[:2000]
    message.next_attempt_at = t + backoff(message.attempts)
    db.session.commit()
    current_app.logger.warning("mail %s to %s not sent (attempt %s, next in %ss): %s",
                               message.id, message.to, message.attempts,
                               backoff(message.attempts), error)
    return False


def deliver_one(message_id: int) -> bool:
    """Try to deliver one queued message now; True when it was handed over (by anyone)."""
    outcome = _attempt(message_id)
    if outcome is None:
        status = db.session.scalar(select(MailMessage.status)
                                   .where(MailMessage.id == message_id))
        return status == "sent"
    return outcome


def deliver(*messages: MailMessage, catch_up: int = 5) -> bool:
    """Deliver freshly committed messages; True when all went out.

    Called after the action's commit, so it never raises: the action is done whatever
    happens here, and a message not sent stays queued for a retry. After a success the
    mail server is evidently up, so up to ``catch_up`` older due messages ride along:
    delivery recovers by itself when the server comes back.
    """
    ids = [m.id for m in messages]
    ok = True
    for message_id in ids:
        try:
            ok = deliver_one(message_id) and ok
        except Exception:  # see the docstring
            db.session.rollback()
            current_app.logger.exception("mail %s: delivery attempt failed", message_id)
            ok = False
    if ok and catch_up:
        try:
            deliver_due(limit=catch_up)
        except Exception:  # the caller's own mail went out; that is its answer
            db.session.rollback()
            current_app.logger.exception("mail: catching up on due messages failed")
    return ok


class _Background:
    """One delivery thread per process, fed by a queue, for ``deliver_in_background``.

    One thread, not one per request: a flood of forgot-password requests against a slow
    mail server queues message ids here instead of piling up threads each stuck in an
    SMTP timeout. Mails go out in the order they were queued. The thread is started on
    first use in each process (granian and gunicorn workers are forked after import).
    """

    def __init__(self, maxsize: int = 1000) -> None:
        self.queue: Queue[tuple[Any, list[int]]] = Queue(maxsize)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, app: Any, ids: list[int]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="mail-delivery",
                                                daemon=True)
                self._thread.start()
        try:
            self.queue.put_nowait((app, ids))
        except Full:
            # Still queued in the database: ``idp mail deliver`` sends it.
            app.logger.warning("mail: background queue full, %s left to the worker", ids)

    def _run(self) -> None:
        while True:
            app, ids = self.queue.get()
            try:
                with app.app_context():
                    try:
                        deliver(*[m for m in (db.session.get(MailMessage, i) for i in ids)
                                  if m is not None])
                    finally:
                        db.session.remove()
            except Exception:  # the thread must outlive any one message
                app.logger.exception("mail: background delivery of %s failed", ids)
            finally:
                self.queue.task_done()

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted delivery has been attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True


background = _Background()


def deliver_in_background(*messages: MailMessage) -> None:
    """Deliver after the caller's commit without making the request wait for it.

    For mails whose page must look the same whether or not they were sent (forgot
    password, the lock at the tenth wrong password): delivered in the request, the SMTP
    round trip would tell an observer by the response time that the account exists.
    A failure leaves the message queued for the retries, as ``deliver`` does.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    background.submit(app, [m.id for m in messages])


def _due(t: int, limit: int, after: int) -> list[int]:
    return list(db.session.scalars(
        select(MailMessage.id)
        .where(MailMessage.status == "pending", MailMessage.next_attempt_at <= t,
               or_(MailMessage.attempts > 0, MailMessage.created_at <= t - _FRESH),
               MailMessage.id > after)
        .order_by(MailMessage.id).limit(limit)
    ))


def deliver_due(*, limit: int | None = _BATCH,
                stop: threading.Event | None = None) -> tuple[int, int]:
    """Deliver messages whose retry time has come, oldest first, all of them when
    ``limit`` is None; returns (sent, not sent) by this call, leaving out messages another
    worker took first. ``stop`` ends it between messages."""
    t = now()
    sent = not_sent = after = 0
    while True:
        batch = _BATCH if limit is None else min(_BATCH, limit - sent - not_sent)
        ids = _due(t, batch, after) if batch > 0 else []
        for message_id in ids:
            if stop is not None and stop.is_set():
                return sent, not_sent
            outcome = _attempt(message_id)
            if outcome is True:
                sent += 1
            elif outcome is False:
                not_sent += 1
        if len(ids) < batch or not ids:
            return sent, not_sent
        after = ids[-1]


def run_worker(*, interval: float, stop: threading.Event,
               report: Callable[[int, int], None] | None = None) -> None:
    """``idp mail deliver --loop``: deliver due messages every ``interval`` seconds until
    ``stop`` is set; a database outage is logged and retried, not fatal."""
    while not stop.is_set():
        try:
            sent, not_sent = deliver_due(limit=None, stop=stop)
        except Exception:  # a worker outlives a restarting database
            db.session.rollback()
            current_app.logger.exception("mail worker: pass failed; retrying in %ss", interval)
        else:
            if report is not None and (sent or not_sent):
                report(sent, not_sent)
        finally:
            db.session.remove()
        stop.wait(interval)


def counts() -> dict[str, int]:
    """Messages in the queue by status."""
    rows = db.session.execute(select(MailMessage.status, func.count())
                              .group_by(MailMessage.status))
    return {status: n for status, n in rows}


def recent(*, status: str | None = None, limit: int = 50) -> list[MailMessage]:
    """The newest messages first (operators' list, development outbox)."""
    query = select(MailMessage).order_by(MailMessage.id.desc()).limit(limit)
    if status is not None:
        query = query.where(MailMessage.status == status)
    return list(db.session.scalars(query))
