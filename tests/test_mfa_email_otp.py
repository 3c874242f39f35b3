"""The e-mail factor (idp/mfa/email_otp.py): a code mailed to the login address, offered
once the user has enrolled a factor, when the operator puts it in the chain."""

from __future__ import annotations

import re

import pytest

from idp.mfa.chain import open_chain
from tests.concurrency import race
from tests.helpers import authorize, consent_if_asked, exchange, query_of, verify_id_token
from tests.mfa_helpers import (
    app_time,
    enrol_totp,
    errors,
    location,
    password_then_chain,
    post_step,
    step_of,
    text,
)
from tests.signin_helpers import audit_actions, configure, update_contract

LOA2 = "urn:idp:loa:2"
CHAIN = ({"when": "two_step", "any": ["sms", "totp", "email_otp", "recovery"]},)


@pytest.fixture
def settings(settings):
    return settings.replace(mfa_chain=CHAIN)


@pytest.fixture
def user(factory):
    return factory.user(two_step=True, email="yamada@example.com")


def id_token_claims(client, rp, response) -> dict:
    target = location(consent_if_asked(client, response))
    assert target.startswith(rp.redirect_uri), target
    body = exchange(client, rp, query_of(target)["code"])
    assert body.status_code == 200, body.json
    return verify_id_token(client, body.json["id_token"], audience=rp.client_id)[1]


def enrolled(app, client, rp, user) -> None:
    """Sign in once, enrolling the authenticator app, then sign out."""
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    response, _, _ = enrol_totp(app, client, page)
    id_token_claims(client, rp, response)
    client.delete_cookie("idp_session")


def email_step(client, rp, user, **params: str):
    """Password, then the chain's link to the e-mail code: the page that mailed it."""
    page = password_then_chain(client, authorize(client, rp, **params), email=user.email)
    assert 'data-step="email_otp"' in text(page), text(page)[:600]
    flow = re.search(r'name="flow" value="([^"]+)"', text(page)).group(1)
    return client.get(f"/mfa?flow={flow}&step=email_otp")


def code_of(mail) -> str:
    return re.search(r"\b(\d{6})\b", mail.body).group(1)


def other(code: str) -> str:
    return "000000" if code != "000000" else "111111"


# -- where it is offered -------------------------------------------------------------------


def test_the_first_enrolment_does_not_offer_the_email_code(client, rp, user, mailbox):
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    assert "2段階認証の設定" in text(page)
    assert 'data-step="email_otp"' not in text(page)
    assert mailbox.to(user.email) == []


def test_the_chain_page_offers_the_email_code_as_an_alternative(app, client, rp, user, mailbox):
    enrolled(app, client, rp, user)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    assert step_of(page) == "totp"
    assert 'data-step="email_otp"' in text(page)
    assert "メールで認証コードを受け取る" in text(page)
    assert mailbox.to(user.email) == []  # nothing is mailed until the user picks it


def test_not_offered_where_the_mailbox_must_not_be_enough(app, client, rp, user):
    # two_step_keep_on_reset: a reset link (the mailbox) must not pass 2-step verification.
    enrolled(app, client, rp, user)
    update_contract(app, user.contract_id, two_step_keep_on_reset=True)
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    assert 'data-step="email_otp"' not in text(page)


# -- the mail and the code -------------------------------------------------------------------


def test_the_code_arrives_by_mail_with_the_brand_prefix(app, client, rp, user, mailbox):
    enrolled(app, client, rp, user)
    page = email_step(client, rp, user)
    assert page.status_code == 200
    assert step_of(page) == "email_otp"
    assert "y***@example.com 宛に認証コードを送信しました。有効期限は5分です。" in text(page)
    [mail] = mailbox.to(user.email)
    assert mail.subject == "【コーデックストレージ】ログイン認証コードのお知らせ"
    assert "山田 太郎 様" in mail.body
    assert re.search(r"^認証コード：\d{6}\r?$", mail.body, re.M)
    # Sealed in the queue and dropped once delivered, as every mail body.
    from idp.models import MailMessage
    from tests.signin_helpers import database

    with database(app) as session:
        [row] = session.query(MailMessage).filter_by(kind="email_otp").all()
        assert row.status == "sent"
        assert row.body_enc is None


def test_the_mail_speaks_the_language_of_the_sign_in(app, client, rp, user, mailbox):
    enrolled(app, client, rp, user)
    page = email_step(client, rp, user, ui_locales="en")
    assert "We sent a code to y***@example.com." in text(page)
    mail = mailbox.last(user.email)
    assert mail.subject == "【Codec Storage】Your sign-in verification code"
    assert re.search(r"^Verification code: \d{6}\r?$", mail.body, re.M)


def test_the_right_code_signs_in_at_the_multi_factor_level(app, client, rp, user, mailbox):
    enrolled(app, client, rp, user)
    page = email_step(client, rp, user)
    # As typed with a Japanese IME: full-width digits and a space.
    typed = code_of(mailbox.last(user.email)).translate(
        str.maketrans("0123456789", "０１２３４５６７８９"))
    claims = id_token_claims(client, rp, post_step(client, page, code=typed[:3] + " " + typed[3:]))
    assert claims["amr"] == ["pwd", "mca", "mfa"]
    assert claims["acr"] == LOA2
    assert ("mfa.verified", {"factor": "email_otp", "reason": "browser not remembered"}) \
        in audit_actions(app, user.id)


def test_a_wrong_code_is_refused_and_counted(app, client, rp, user, mailbox):
    enrolled(app, client, rp, user)
    page = email_step(client, rp, user)
    refused = post_step(client, page, code=other(code_of(mailbox.last(user.email))))
    assert refused.status_code == 400
    assert errors(refused) == ["認証コードが正しくありません。もう一度入力してください。"]
    assert ("mfa.failed", {"factor": "email_otp"}) in audit_actions(app, user.id)


def test_the_code_expires(app, client, rp, user, mailbox, clock):
    enrolled(app, client, rp, user)
    page = email_step(client, rp, user)
    clock.advance(301)
    expired = post_step(client, page, code=code_of(mailbox.last(user.email)))
    assert expired.status_code == 400
    assert errors(expired)[0].startswith("認証コードの有効期限が切れました。")


def test_the_code_is_single_use(app, client, rp, user, mailbox):
    enrolled(app, client, rp, user)
    # Two browsers at the chain: the second finds the code already mailed (one per user).
    second = app.test_client()
    pages = [email_step(client, rp, user), email_step(second, rp, user)]
    [mail] = mailbox.to(user.email)
    results = race(*[lambda b=b, p=p: post_step(b, p, code=code_of(mail))
                     for b, p in zip((client, second), pages, strict=True)])
    assert sorted(r.status_code for r in results) == [302, 400]
    [refused] = [r for r in results if r.status_code == 400]
    assert errors(refused)[0].startswith("認証コードの有効期限が切れました。")


def test_five_wrong_tries_void_the_code(app, client, rp, user, mailbox, clock):
    enrolled(app, client, rp, user)
    page = email_step(client, rp, user)
    right = code_of(mailbox.last(user.email))
    for _ in range(5):
        assert post_step(client, page, code=other(right)).status_code == 400
    late = post_step(client, page, code=right)
    assert late.status_code == 400
    assert "規定回数以上間違えた" in errors(late)[0]
    clock.advance(61)
    assert post_step(client, page, action="resend").status_code == 200
    assert location(post_step(client, page, code=code_of(mailbox.last(user.email))))


def test_a_new_code_waits_and_sends_are_limited_per_hour(app, client, rp, user, mailbox, clock):
    # The hourly limit counts in fixed windows of the app clock: start at one's beginning.
    clock.advance(3600 - app_time(app) % 3600)
    enrolled(app, client, rp, user)
    page = email_step(client, rp, user)
    first = code_of(mailbox.last(user.email))
    too_soon = post_step(client, page, action="resend")
    assert too_soon.status_code == 429
    assert 0 < int(too_soon.headers["Retry-After"]) <= 60
    assert errors(too_soon)[0].startswith("認証コードを送信したばかりです。")
    assert len(mailbox.to(user.email)) == 1
    for _ in range(4):
        clock.advance(61)
        assert post_step(client, page, action="resend").status_code == 200
    clock.advance(61)
    limited = post_step(client, page, action="resend")
    assert limited.status_code == 429
    assert errors(limited)[0].startswith("認証コードの送信回数が上限に達しました。")
    mails = mailbox.to(user.email)
    assert len(mails) == 5
    # A new code replaces the one before.
    last = code_of(mails[-1])
    if first != last:
        assert post_step(client, page, code=first).status_code == 400
    assert location(post_step(client, page, code=last))


# -- an e-mail-only chain -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["all", "any"])
def test_a_chain_of_the_email_code_alone_needs_no_enrolment(
        app, client, rp, user, mailbox, mode):
    configure(app, mfa_chain=({"when": "two_step", mode: ["email_otp"]},))
    app.extensions["idp.chain"] = open_chain(app.extensions["idp.settings"])
    page = password_then_chain(client, authorize(client, rp), email=user.email)
    assert step_of(page) == "email_otp", text(page)[:400]
    claims = id_token_claims(client, rp,
                             post_step(client, page, code=code_of(mailbox.last(user.email))))
    assert claims["amr"] == ["pwd", "mca", "mfa"]

