"""TOTP factor (idp/mfa/totp.py): RFC 6238 codes, single use per step, sealed secret, QR."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select, text

from idp import audit
from idp.db import db
from idp.mfa import totp
from idp.models import AuditEvent, Factor, UsedTotpStep, User
from tests.concurrency import race


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.remove()


def member(user) -> User:
    return db.session.get(User, user.id)


def enrolled(user) -> Factor:
    factor = totp.enrol(member(user))
    db.session.commit()
    return factor


def code_at(factor: Factor, t: int) -> str:
    """What the user's authenticator app shows at ``t``."""
    return pyotp.TOTP(totp.secret_of(factor)).at(t)


@pytest.fixture
def t0(clock) -> int:
    """The middle of a 30-second step, so +-15 s never crosses a step by accident."""
    return (int(clock.now()) // 30) * 30 + 15


def test_a_code_from_the_app_is_accepted_and_confirms_the_factor(ctx, user, t0):
    factor = enrolled(user)
    assert factor.confirmed_at is None
    assert totp.verify(factor, code_at(factor, t0), at=t0)
    db.session.commit()
    stored = db.session.get(Factor, factor.id)
    assert (stored.confirmed_at, stored.last_used_at) == (t0, t0)
    assert totp.verify(factor, code_at(factor, t0 + 30), at=t0 + 30)
    assert (factor.confirmed_at, factor.last_used_at) == (t0, t0 + 30)


def test_verify_uses_the_app_clock_when_no_time_is_given(ctx, user, clock):
    factor = enrolled(user)
    clock.advance(86400 * 30)
    assert totp.verify(factor, code_at(factor, int(clock.now())))


@pytest.mark.parametrize("skew", [-30, 30], ids=["previous step", "next step"])
def test_a_code_one_step_off_is_accepted(ctx, user, t0, skew):
    factor = enrolled(user)
    assert totp.verify(factor, code_at(factor, t0 + skew), at=t0)


@pytest.mark.parametrize("skew", [-60, 60], ids=["two steps behind", "two steps ahead"])
def test_a_code_two_steps_off_is_refused(ctx, user, t0, skew):
    factor = enrolled(user)
    assert not totp.verify(factor, code_at(factor, t0 + skew), at=t0)
    assert factor.confirmed_at is None


@pytest.mark.parametrize("typed", [
    lambda c: c[:3] + " " + c[3:],
    lambda c: "".join(chr(ord(d) + 0xFEE0) for d in c),
    lambda c: f" {c}\n",
], ids=["grouped with a space", "full-width digits", "surrounding whitespace"])
def test_a_code_is_accepted_as_typed(ctx, user, t0, typed):
    factor = enrolled(user)
    assert totp.verify(factor, typed(code_at(factor, t0)), at=t0)


@pytest.mark.parametrize("typed", [
    lambda c: str((int(c) + 1) % 1_000_000).zfill(6),
    lambda c: c[:5],
    lambda c: c + "0",
    lambda c: c[:5] + "a",
    lambda c: "",
    lambda c: None,
    lambda c: "1" * 10_000,
], ids=["wrong", "too short", "too long", "a letter", "empty", "missing", "huge"])
def test_a_wrong_or_malformed_code_is_refused(ctx, user, t0, typed):
    factor = enrolled(user)
    assert not totp.verify(factor, typed(code_at(factor, t0)), at=t0)
    assert db.session.scalar(select(func.count()).select_from(UsedTotpStep)) == 0


def test_a_code_is_accepted_only_once(ctx, user, t0):
    factor = enrolled(user)
    code = code_at(factor, t0)
    assert totp.verify(factor, code, at=t0)
    db.session.commit()
    assert not totp.verify(factor, code, at=t0)
    assert not totp.verify(factor, code, at=t0 + 20)  # still in the window, still refused


def test_a_code_older_than_the_last_accepted_one_is_refused(ctx, user, t0):
    factor = enrolled(user)
    assert totp.verify(factor, code_at(factor, t0 + 30), at=t0)  # the app runs ahead
    db.session.commit()
    # The current step's code was never used, but it predates the accepted one.
    assert not totp.verify(factor, code_at(factor, t0), at=t0)
    assert not totp.verify(factor, code_at(factor, t0 - 30), at=t0)
    assert totp.verify(factor, code_at(factor, t0 + 60), at=t0 + 60)


def test_a_rolled_back_verification_leaves_the_code_usable(ctx, user, t0):
    factor = enrolled(user)
    code = code_at(factor, t0)
    assert totp.verify(factor, code, at=t0)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(UsedTotpStep)) == 0
    assert totp.verify(factor, code, at=t0)


@pytest.mark.parametrize("other_writes", [False, True],
                         ids=["verification alone", "beside other writes of the request"])
def test_two_concurrent_submissions_of_one_code_exactly_one_succeeds(app, user, t0,
                                                                      other_writes):
    with app.app_context():
        factor = enrolled(user)
        factor_id = factor.id
        code = code_at(factor, t0)
        db.session.remove()
    def submit(i: int) -> bool:
        mine = db.session.get(Factor, factor_id)
        if other_writes:  # the loser's own writes must survive its refused INSERT
            audit.record("test.submit", actor=f"thread:{i}")
        result = totp.verify(mine, code, at=t0)
        db.session.commit()
        return result

    outcomes = race(lambda: submit(0), lambda: submit(1), app=app)
    assert sorted(outcomes, key=str) == [False, True]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(UsedTotpStep)) == 1
        if other_writes:
            actors = db.session.scalars(select(AuditEvent.actor)
                                        .where(AuditEvent.action == "test.submit"))
            assert sorted(actors) == ["thread:0", "thread:1"]
        db.session.remove()


def test_the_secret_is_sealed_at_rest(ctx, user):
    factor = enrolled(user)
    secret = totp.secret_of(factor)
    assert len(base64.b32decode(secret)) * 8 == 160
    raw = db.session.execute(text("SELECT secret_enc FROM mfa_factors WHERE id = :id"),
                             {"id": factor.id}).scalar_one()
    raw = bytes(raw)
    assert secret.encode() not in raw
    assert base64.b32decode(secret) not in raw


def test_a_sealed_secret_copied_to_another_users_factor_does_not_unseal(ctx, factory, user):
    mine = enrolled(user)
    theirs = enrolled(factory.user())
    theirs.secret_enc = mine.secret_enc
    with pytest.raises(InvalidTag):
        totp.secret_of(theirs)


def test_each_enrolment_has_a_new_secret_and_replaces_an_unconfirmed_one(ctx, user, t0):
    first_secret = totp.secret_of(enrolled(user))
    second = enrolled(user)
    assert totp.secret_of(second) != first_secret
    assert db.session.scalars(select(Factor.id).where(Factor.user_id == user.id)).all() == [
        second.id]
    assert totp.verify(second, code_at(second, t0), at=t0)
    db.session.commit()
    third = enrolled(user)  # a confirmed factor is not dropped by a new enrolment
    assert sorted(db.session.scalars(select(Factor.id).where(Factor.user_id == user.id))) == [
        second.id, third.id]


def test_the_provisioning_uri_names_issuer_account_secret_digits_and_period(ctx, user):
    factor = enrolled(user)
    uri = totp.provisioning_uri(factor, account="taro@example.com", issuer="Codec ID")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/Codec ID:taro@example.com"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {"secret": totp.secret_of(factor), "issuer": "Codec ID",
                     "algorithm": "SHA1", "digits": "6", "period": "30"}
    # What an authenticator app does with it: the same codes as ours.
    app_side = pyotp.parse_uri(uri)
    assert app_side.at(1_000_000) == code_at(factor, 1_000_000)


def test_the_qr_code_is_an_svg_data_uri_rendered_here(ctx, user):
    factor = enrolled(user)
    uri = totp.provisioning_uri(factor, account="taro@example.com", issuer="Codec ID")
    image = totp.qr_svg(uri)
    assert image.startswith("data:image/svg+xml")
    svg = unquote(image.split(",", 1)[1])
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<script" not in svg and "style=" not in svg and "http://" not in svg.replace(
        "http://www.w3.org/2000/svg", "")
    assert totp.qr_svg(uri.replace("taro", "hanako")) != image


def test_an_sms_factor_cannot_be_verified_as_totp(ctx, user):
    sms = Factor(user_id=user.id, type="sms", phone="+819012345678", created_at=0)
    db.session.add(sms)
    db.session.commit()
    with pytest.raises(ValueError):
        totp.verify(sms, "123456")
