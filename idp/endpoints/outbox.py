"""Development outbox: mails the provider sent or queued (IDP_ENVIRONMENT=development only).

With an empty ``smtp_url`` the outbox sender keeps delivered bodies, so ``make run``
shows every invitation, reset and unlock link here without a mail server; with an empty
``sms_url`` the 2-step SMS codes are listed here too. Anywhere but
development the pages do not exist (404): bodies hold live ticket links.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, current_app, render_template
from markupsafe import Markup, escape
from sqlalchemy import select

from ..db import db
from ..models import MailMessage, SmsOutboxMessage
from ..notify import mail

bp = Blueprint("outbox", __name__)

#: How many messages the list shows (newest first).
LIST_LIMIT = 200
_URL = re.compile(r"https?://[^\s<>\"']+")


@bp.before_request
def _development_only() -> None:
    if current_app.extensions["idp.settings"].environment != "development":
        abort(404)


def linkify(text: str) -> Markup:
    """The body as HTML: everything escaped, http(s) URLs made into links."""
    parts: list[Markup] = []
    pos = 0
    for match in _URL.finditer(text):
        parts.append(escape(text[pos:match.start()]))
        parts.append(Markup('<a href="{0}">{0}</a>').format(match.group(0)))
        pos = match.end()
    parts.append(escape(text[pos:]))
    return Markup("").join(parts)


def _time(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@bp.get("/dev/outbox")
def index() -> Response:
    # SMS codes too, when no gateway is configured (``idp.notify.sms.OutboxSmsSender``).
    texts = db.session.scalars(select(SmsOutboxMessage).order_by(SmsOutboxMessage.id.desc())
                               .limit(LIST_LIMIT)).all()
    return Response(render_template("outbox/index.html", messages=mail.recent(limit=LIST_LIMIT),
                                    texts=texts, time=_time))


@bp.get("/dev/outbox/<int:message_id>")
def show(message_id: int) -> Response:
    message = db.session.get(MailMessage, message_id)
    if message is None:
        abort(404)
    body = mail.body_of(message)
    return Response(render_template("outbox/show.html", message=message, time=_time,
                                    body=linkify(body) if body else None))
