"""Tickets (idp/tickets.py): single use, 14 days, superseded, only a digest at rest."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from idp import tickets
from idp.db import db
from idp.models import Ticket, User
from idp.tickets import TicketError
from tests.concurrency import race


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


def member(user) -> User:
    return db.session.get(User, user.id)


def issue(user, kind: str = "password_reset", **kwargs) -> str:
    issued = tickets.issue(kind, member(user), **kwargs)
    db.session.commit()
    return issued.token


def reason(token: str | None, kind: str = "password_reset") -> str:
    with pytest.raises(TicketError) as caught:
        tickets.peek(token, kind)
    return caught.value.reason


def test_a_ticket_is_used_once(ctx, user):
    token = issue(user)
    assert tickets.peek(token, "password_reset").user_id == user.id
    used = tickets.use(token, "password_reset")
    db.session.commit()
    assert used.used_at is not None
    assert reason(token) == "used"
    with pytest.raises(TicketError) as caught:
        tickets.use(token, "password_reset")
    assert caught.value.reason == "used"


def test_a_rolled_back_use_leaves_the_ticket_usable(ctx, user):
    token = issue(user)
    tickets.use(token, "password_reset")
    db.session.rollback()
    assert tickets.peek(token, "password_reset")


def test_a_ticket_expires_after_14_days(ctx, user, clock):
    token = issue(user)
    clock.advance(14 * 86400 - 5)
    assert tickets.peek(token, "password_reset")
    clock.advance(5)
    assert reason(token) == "expired"
    with pytest.raises(TicketError):
        tickets.use(token, "password_reset")


def test_a_newer_ticket_of_the_same_kind_supersedes_the_older(ctx, user):
    first = issue(user)
    other_kind = issue(user, "unlock")
    second = issue(user)
    assert reason(first) == "superseded"
    assert tickets.peek(second, "password_reset")
    assert tickets.peek(other_kind, "unlock")  # other kinds are untouched


def test_void_and_void_sent_to(ctx, user):
    reset = issue(user)
    unlock = issue(user, "unlock")
    tickets.void(member(user), "unlock")
    db.session.commit()
    assert reason(unlock, "unlock") == "superseded"
    assert tickets.peek(reset, "password_reset")
    tickets.void_sent_to(member(user), user.email)
    db.session.commit()
    assert reason(reset) == "superseded"


@pytest.mark.parametrize("token", [None, "", "x", "A" * 43, "A" * 200],
                         ids=["none", "empty", "short", "unknown", "overlong"])
def test_unknown_or_malformed_tokens_are_unknown(ctx, user, token):
    issue(user)
    assert reason(token) == "unknown"


def test_a_tampered_token_is_unknown(ctx, user):
    token = issue(user)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert reason(flipped) == "unknown"


def test_a_token_of_another_kind_is_unknown(ctx, user):
    token = issue(user, "unlock")
    assert reason(token, "password_reset") == "unknown"


def test_only_the_sha256_of_the_token_is_stored(ctx, user):
    issued = tickets.issue("unlock", member(user))
    db.session.commit()
    row = db.session.scalar(select(Ticket).where(Ticket.id == issued.ticket.id))
    assert row.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    stored = " ".join(str(getattr(row, c.key)) for c in Ticket.__table__.columns)
    assert issued.token not in stored
    assert len(issued.token) >= 43  # 256 bits


def test_user_of_a_deleted_user_is_unknown(ctx, user):
    token = issue(user)
    assert tickets.user_of(tickets.peek(token, "password_reset")).id == user.id
    orphan = Ticket(user_id="gone", kind="unlock")  # its user was deleted after the mail
    with pytest.raises(TicketError) as caught:
        tickets.user_of(orphan)
    assert caught.value.reason == "unknown"


def test_two_threads_racing_to_use_one_ticket_exactly_one_wins(app, user):
    with app.app_context():
        token = issue(user)
        db.session.remove()
    def spend() -> str:
        try:
            tickets.use(token, "password_reset")
            db.session.commit()
            return "won"
        except TicketError as exc:
            return exc.reason

    outcomes = race(spend, spend, app=app)
    assert sorted(outcomes) == ["used", "won"]


def test_unknown_kinds_cannot_be_issued(ctx, user):
    with pytest.raises(ValueError):
        tickets.issue("magic", member(user))
