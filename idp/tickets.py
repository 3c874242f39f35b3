"""Tickets: one-time links mailed to users (ARCHITECTURE "Flows as state", SPEC §6).

The mail carries a random 256-bit token; only its SHA-256 is stored, with the kind, the
user, the address it went to, a 14-day expiry and single use. Issuing a ticket voids every
older live ticket of the same kind for the same user, so only the newest link works.

Using a ticket is one conditional ``UPDATE ... WHERE used_at IS NULL``: of two concurrent
uses exactly one sees its row count be 1, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from .clock import now
from .db import db
from .models import Ticket, User
from .models.ticket import KINDS
from .security import random_token, sha256_hex

_MAX_TOKEN = 128


class TicketError(Exception):
    """Why a link cannot be used: ``unknown``, ``expired``, ``used`` or ``superseded``.

    ``reason`` is also an ``idp.i18n`` key suffix (``ticket_<reason>``) for the page.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Issued:
    ticket: Ticket
    #: The token for the link; it exists only in this object and in the mail.
    token: str


def ttl() -> int:
    return current_app.extensions["idp.settings"].ticket_ttl


def issue(kind: str, user: User, *, email: str | None = None, issued_by: str = "self",
          data: dict[str, Any] | None = None) -> Issued:
    """Add a new ticket to the session (the caller commits), voiding older ones of its kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown ticket kind {kind!r}")
    t = now()
    void(user, kind)
    token = random_token()
    ticket = Ticket(token_hash=sha256_hex(token), kind=kind, user_id=user.id,
                    contract_id=user.contract_id, email=email or user.email,
                    data=dict(data or {}), issued_by=issued_by, created_at=t,
                    expires_at=t + ttl())
    db.session.add(ticket)
    return Issued(ticket, token)


def void(user: User, *kinds: str) -> None:
    """Void the user's live tickets of ``kinds`` (all kinds when none is given)."""
    stmt = (update(Ticket)
            .where(Ticket.user_id == user.id, Ticket.used_at.is_(None),
                   Ticket.voided_at.is_(None))
            .values(voided_at=now()))
    if kinds:
        stmt = stmt.where(Ticket.kind.in_(kinds))
    db.session.execute(stmt)


def void_sent_to(user: User, address: str) -> None:
    """An email change voids every live ticket that went to the old address."""
    db.session.execute(
        update(Ticket)
        .where(Ticket.user_id == user.id, Ticket.email == address, Ticket.used_at.is_(None),
               Ticket.voided_at.is_(None))
        .values(voided_at=now())
    )


def peek(token: str | None, kind: str) -> Ticket:
    """The live ticket for ``token`` without using it (the page a link opens shows it)."""
    if not token or len(token) > _MAX_TOKEN:
        raise TicketError("unknown")
    ticket = db.session.scalar(
        select(Ticket).where(Ticket.token_hash == sha256_hex(token), Ticket.kind == kind)
    )
    if ticket is None:
        raise TicketError("unknown")
    if ticket.used_at is not None:
        raise TicketError("used")
    if ticket.voided_at is not None:
        raise TicketError("superseded")
    if ticket.expires_at <= now():
        raise TicketError("expired")
    return ticket


def open_link(token: str | None, kind: str, *, brand_id: str) -> tuple[Ticket, User]:
    """The live ticket a mailed link carries, and its user, without using it.

    A link works only on the host of the brand that mailed it: opened on another brand's
    host it is unknown, as if that brand had never heard of it.
    """
    ticket = peek(token, kind)
    user = user_of(ticket)
    if user.brand != brand_id:
        raise TicketError("unknown")
    return ticket, user


def use(token: str | None, kind: str) -> Ticket:
    """Mark the ticket used, in the caller's transaction; exactly one concurrent use wins.

    The caller applies the ticket's effect in the same transaction and commits; if it
    rolls back instead, the ticket stays usable.
    """
    ticket = peek(token, kind)
    t = now()
    result = db.session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.used_at.is_(None), Ticket.voided_at.is_(None),
               Ticket.expires_at > t)
        .values(used_at=t)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise TicketError("used")
    ticket.used_at = t
    return ticket


def user_of(ticket: Ticket) -> User:
    user = db.session.get(User, ticket.user_id)
    if user is None:  # deleted after the mail was sent
        raise TicketError("unknown")
    return user
