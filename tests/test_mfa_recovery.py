"""Recovery code (idp/mfa/recovery.py): 100 bits, only a digest at rest, one use, renewed."""

from __future__ import annotations

import math
import re

import pytest
from sqlalchemy import func, select

from idp.db import db
from idp.mfa import recovery
from idp.models import RecoveryCode, User
from idp.security import sha256_hex
from tests.concurrency import race


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


def member(user) -> User:
    return db.session.get(User, user.id)


def issued(user) -> str:
    code = recovery.issue(member(user))
    db.session.commit()
    return code


def use(user, code: str | None) -> str | None:
    new = recovery.use(member(user), code)
    db.session.commit()
    return new


def live_codes(user) -> int:
    return db.session.scalar(
        select(func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None),
               RecoveryCode.voided_at.is_(None)))


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


FORMAT = re.compile(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){4}")


def test_a_code_has_100_bits_in_groups_of_four(ctx, user):
    codes = {issued(user) for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        assert FORMAT.fullmatch(code), code
    assert len(recovery.ALPHABET) == len(set(recovery.ALPHABET)) == 32
    assert recovery.LENGTH * math.log2(len(recovery.ALPHABET)) >= 100
    # Every symbol turns up: the codes are drawn from the whole alphabet.
    assert set("".join(codes).replace("-", "")) == set(recovery.ALPHABET)


def test_only_the_digest_of_the_code_is_stored(ctx, user):
    code = issued(user)
    row = db.session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).one()
    assert row.code_hash == sha256_hex(code.replace("-", ""))
    values = [str(getattr(row, c.key)) for c in RecoveryCode.__table__.columns]
    assert not any(code.replace("-", "") in v or code in v for v in values)


@pytest.mark.parametrize("typed", [
    lambda c: c,
    lambda c: c.replace("-", ""),
    lambda c: c.replace("-", " "),
    lambda c: "  " + c.replace("-", "\u3000") + "\n",
    lambda c: c.lower(),
    lambda c: full_width(c),
    lambda c: full_width(c.lower()).replace("－", "ー"),
    lambda c: c.replace("-", "\u2013"),
    lambda c: c.replace("0", "O").replace("1", "l"),
], ids=["as shown", "without hyphens", "spaces for hyphens", "ideographic spaces",
        "lower case", "full-width", "full-width with an IME long-vowel mark",
        "en dashes", "letters for look-alike digits"])
def test_a_code_is_accepted_as_copied(ctx, user, typed):
    code = issued(user)
    assert use(user, typed(code)) is not None


@pytest.mark.parametrize(("typed", "canonical"), [
    ("abcd-efgh", "ABCDEFGH"),
    ("ＡＢＣＤ　ＥＦＧＨ", "ABCDEFGH"),
    (" ab cd\tef-gh\n", "ABCDEFGH"),
    ("O0-Il", "0011"),
], ids=["hyphen and lower case", "full-width with ideographic space", "whitespace",
        "look-alikes"])
def test_normalise(typed, canonical):
    assert recovery.normalise(typed) == canonical


def test_a_used_code_stops_working_and_the_new_one_works(ctx, user):
    first = issued(user)
    second = use(user, first)
    assert second is not None and second != first and FORMAT.fullmatch(second)
    assert use(user, first) is None
    third = use(user, second)
    assert third is not None
    assert live_codes(user) == 1


def test_issuing_a_code_voids_the_older_one(ctx, user):
    old = issued(user)
    new = issued(user)
    assert use(user, old) is None
    assert use(user, new) is not None
    voided = db.session.scalars(select(RecoveryCode).where(
        RecoveryCode.code_hash == sha256_hex(recovery.normalise(old)))).one()
    assert voided.voided_at is not None and voided.used_at is None


def test_resetting_the_enrolment_voids_the_code(ctx, user):
    code = issued(user)
    recovery.void_all(member(user))
    db.session.commit()
    assert use(user, code) is None
    assert live_codes(user) == 0


def test_another_users_code_does_not_work(ctx, factory, user):
    theirs = issued(factory.user())
    issued(user)
    assert use(user, theirs) is None


@pytest.mark.parametrize("typed", ["", None, "0" * 20, "A" * 10_000],
                         ids=["empty", "missing", "a guess", "huge"])
def test_a_wrong_code_is_refused_and_issues_nothing(ctx, user, typed):
    issued(user)
    assert use(user, typed) is None
    assert db.session.scalar(select(func.count()).select_from(RecoveryCode)) == 1


def test_a_rolled_back_use_leaves_the_code_usable(ctx, user):
    code = issued(user)
    assert recovery.use(member(user), code) is not None
    db.session.rollback()
    assert use(user, code) is not None


def test_two_concurrent_uses_of_one_code_exactly_one_wins(app, user):
    with app.app_context():
        code = issued(user)
        db.session.remove()
    def spend() -> str | None:
        result = recovery.use(member(user), code)
        db.session.commit()
        return result

    outcomes = race(spend, spend, app=app)
    winners = [o for o in outcomes if o is not None]
    assert outcomes.count(None) == 1 and len(winners) == 1, outcomes
    assert FORMAT.fullmatch(winners[0])
    with app.app_context():
        assert live_codes(user) == 1
        assert use(user, winners[0]) is not None
        db.session.remove()


def test_two_concurrent_issues_leave_one_live_code(app, user):
    with app.app_context():
        issued(user)
        db.session.remove()
    def reissue() -> None:
        recovery.issue(member(user))
        db.session.commit()

    errors = [o for o in race(reissue, reissue, app=app) if o is not None]
    assert errors == []
    with app.app_context():
        assert live_codes(user) == 1
        db.session.remove()
