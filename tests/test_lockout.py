"""Lockout, device cookies and sign-in rate limits (SPEC §4.2; OWASP device cookies)."""

from __future__ import annotations

import pytest

from tests.helpers import PASSWORD
from tests.signin_helpers import (
    BRAND_URLS,
    CODEC,
    WRONG,
    audit_actions,
    configure,
    error_texts,
    fail,
    get_user,
    login,
    signed_in,
    update_user,
)

CASES = [("codec", "ja"), ("codec", "en"), ("work", "ja"), ("work", "en")]
IDS = ["codec-ja", "codec-en", "work-ja", "work-en"]
SUBJECTS = {("codec", "ja"): "【コーデックストレージ】アカウントロック",
            ("codec", "en"): "【Codec Storage】Your account has been locked",
            ("work", "ja"): "【ワークストレージ】アカウントロック",
            ("work", "en"): "【Work Storage】Your account has been locked"}


@pytest.mark.parametrize(("brand", "locale"), CASES, ids=IDS)
def test_ten_wrong_passwords_lock_the_account_and_mail_an_unlock_link(
        app, client, factory, mailbox, brand, locale):
    user = factory.user(email="locked@example.com", brand=brand)
    update_user(app, user.id, locale=locale)
    base = BRAND_URLS[brand]

    fail(client, user.email, 9, base_url=base)
    assert get_user(app, user.id).locked_at is None
    assert mailbox.to(user.email) == []

    fail(client, user.email, 1, base_url=base)
    row = get_user(app, user.id)
    assert row.locked_at is not None and row.failed_logins == 10
    mail = mailbox.last(user.email)
    # The mail speaks the user's language, whatever the browser that failed asked for.
    assert mail.subject == SUBJECTS[(brand, locale)]
    assert "山田 太郎" in mail.body
    assert mail.link.startswith("/account/unlock?ticket=")
    assert mail.host == {"codec": "127.0.0.1:5000", "work": "work.localhost:5000"}[brand]
    actions = [a for a, _ in audit_actions(app, user.id)]
    assert actions.count("signin.failure") == 10
    assert "user.locked" in actions


def test_the_lock_mail_speaks_the_language_the_user_last_signed_in_with(
        app, client, factory, mailbox):
    user = factory.user(email="english@example.com")  # created in Japanese
    assert signed_in(login(client, user.email, lang="en"))
    stranger = app.test_client()  # an attacker's browser, in Japanese
    fail(stranger, user.email, 10)
    assert mailbox.last(user.email).subject == "【Codec Storage】Your account has been locked"


def test_the_eleventh_attempt_with_the_right_password_is_refused_like_a_wrong_one(
        app, client, factory, mailbox):
    user = factory.user(email="eleven@example.com")
    fail(client, user.email, 10)
    right = login(client, user.email, PASSWORD)
    wrong = login(client, user.email, WRONG)
    unknown = login(client, "nobody@example.com", WRONG)
    assert right.status_code == wrong.status_code == unknown.status_code == 401
    assert error_texts(right) == error_texts(wrong) == error_texts(unknown)
    assert not signed_in(right)
    assert "idp_device=" not in " ".join(right.headers.getlist("Set-Cookie"))
    # Locked, not re-locked: one mail only.
    assert len(mailbox.to(user.email)) == 1
    reasons = [d.get("reason") for a, d in audit_actions(app, user.id) if a == "signin.failure"]
    assert reasons[-2:] == ["locked", "wrong_password"]


def test_refusal_mentions_that_repeated_failures_lock_and_mail(client, factory):
    user = factory.user(email="hint@example.com")
    ja = error_texts(login(client, user.email, WRONG))[0]
    en = error_texts(login(client, user.email, WRONG, lang="en"))[0]
    assert "ロック" in ja and "メール" in ja
    assert "lock" in en and "mail" in en


def test_a_right_password_ends_the_run_of_wrong_ones(app, client, factory, mailbox):
    user = factory.user(email="run@example.com")
    fail(client, user.email, 9)
    assert signed_in(login(client, user.email))
    assert get_user(app, user.id).failed_logins == 0
    fail(client, user.email, 9, base_url=CODEC)
    assert get_user(app, user.id).locked_at is None
    assert mailbox.to(user.email) == []


def test_a_known_browser_still_signs_in_while_the_account_is_locked_for_others(
        app, client, factory, mailbox):
    user = factory.user(email="known@example.com")
    assert signed_in(login(client, user.email))  # this browser is now known to the account

    attacker = app.test_client()
    fail(attacker, user.email, 10, address="203.0.113.9")
    assert get_user(app, user.id).locked_at is not None
    assert not signed_in(login(attacker, user.email, address="203.0.113.9"))
    stranger = app.test_client()
    assert not signed_in(login(stranger, user.email))

    response = login(client, user.email)
    assert signed_in(response)
    assert client.get("/signed-in").status_code == 200
    # The account stays locked for everyone else.
    assert get_user(app, user.id).locked_at is not None
    assert not signed_in(login(stranger, user.email))


def test_wrong_passwords_in_a_known_browser_count_against_its_cookie_not_the_account(
        app, client, factory, mailbox):
    user = factory.user(email="cookie@example.com")
    assert signed_in(login(client, user.email))
    fail(client, user.email, 10)
    row = get_user(app, user.id)
    assert row.locked_at is None and row.failed_logins == 0
    assert mailbox.to(user.email) == []
    # At the threshold the cookie is blocked: this browser now counts like any other.
    fail(client, user.email, 1)
    assert get_user(app, user.id).failed_logins == 1
    # The right password still works (the account is not locked) and makes it known again.
    assert signed_in(login(client, user.email))
    fail(client, user.email, 3)
    assert get_user(app, user.id).failed_logins == 0


def test_a_device_cookie_of_another_account_or_a_forged_one_does_not_help(
        app, client, factory, mailbox):
    victim = factory.user(email="victim@example.com")
    mine = factory.user(email="mine@example.com")
    assert signed_in(login(client, mine.email))
    fail(app.test_client(), victim.email, 10)
    assert not signed_in(login(client, victim.email))

    forged = app.test_client()
    forged.set_cookie("idp_device", "W1sieCIsInkiLDFdXQ.forged-signature")
    assert not signed_in(login(forged, victim.email))


def test_device_cookie_is_httponly_samesite_lax(client, factory):
    user = factory.user(email="attrs@example.com")
    response = login(client, user.email)
    header = next(h for h in response.headers.getlist("Set-Cookie")
                  if h.startswith("idp_device="))
    attributes = [a.strip().lower() for a in header.split(";")[1:]]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert user.id not in header  # signed and encoded, but carries no readable secret
    # A new nonce at every sign-in.
    again = next(h for h in login(client, user.email).headers.getlist("Set-Cookie")
                 if h.startswith("idp_device="))
    assert again.split(";")[0] != header.split(";")[0]


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_too_many_failures_from_one_address_answer_429_without_checking_the_password(
        app, client, factory, clock, lang):
    configure(app, login_failures_per_address=3)
    user = factory.user(email="ratelimit@example.com")
    for n in range(3):
        assert login(client, f"guess{n}@example.com", WRONG, address="198.51.100.7",
                     lang=lang).status_code == 401

    response = login(client, user.email, address="198.51.100.7", lang=lang)
    assert response.status_code == 429
    retry = int(response.headers["Retry-After"])
    assert 0 < retry <= app.extensions["idp.settings"].rate_window
    text = error_texts(response)[0]
    assert ("しばらく" in text) if lang == "ja" else ("Too many" in text)
    assert not signed_in(response)
    assert get_user(app, user.id).failed_logins == 0  # the password was never checked

    # Another address is not affected, and the window ends.
    assert signed_in(login(app.test_client(), user.email, address="198.51.100.8"))
    clock.advance(retry)
    assert signed_in(login(client, user.email, address="198.51.100.7"))


def test_rate_limit_refusals_are_audited_once_per_window(app, client, factory):
    configure(app, login_failures_per_address=2)
    for _ in range(2):
        login(client, "x@example.com", WRONG, address="198.51.100.9")
    for _ in range(3):
        assert login(client, "x@example.com", WRONG, address="198.51.100.9").status_code == 429
    assert [a for a, _ in audit_actions(app)].count("signin.rate_limited") == 1


def test_attempts_per_account_from_unknown_browsers_are_limited_but_known_browsers_pass(
        app, client, factory, mailbox):
    configure(app, login_attempts_per_account=5, lockout_threshold=100)
    user = factory.user(email="hammered@example.com")
    assert signed_in(login(client, user.email))  # known browser
    for n in range(4):  # from many addresses, as a botnet would
        fail(app.test_client(), user.email, 1, address=f"192.0.2.{n + 1}")
    stranger = app.test_client()
    response = login(stranger, user.email, address="192.0.2.200")
    assert response.status_code == 429 and response.headers["Retry-After"]
    # Unknown accounts are limited the same way: nothing tells them apart.
    for _ in range(5):
        login(app.test_client(), "ghost@example.com", WRONG, address="192.0.2.201")
    assert login(app.test_client(), "ghost@example.com", WRONG,
                 address="192.0.2.202").status_code == 429
    assert signed_in(login(client, user.email))


def test_sign_ins_are_audited_with_a_reason_and_never_the_password(app, client, factory):
    user = factory.user(email="audit@example.com")
    login(client, user.email, WRONG)
    login(client, user.email)
    login(client, "unknown@example.com", WRONG)
    login(client, "Secret-Typed-In-Email-9", WRONG)  # a password typed in the wrong field
    events = audit_actions(app)
    flat = repr(events)
    assert WRONG not in flat and PASSWORD not in flat and "Secret-Typed" not in flat
    mine = [(a, d) for a, d in audit_actions(app, user.id)]
    assert mine[0] == ("signin.failure", {"reason": "wrong_password", "known_browser": False})
    assert mine[1][0] == "signin.success"
    assert ("signin.failure", {"reason": "unknown_account", "known_browser": False,
                               "email": "unknown@example.com"}) in events


def test_invited_disabled_and_upstream_users_get_the_same_answer(app, client, factory):
    invited = factory.user(email="invited@example.com")
    disabled = factory.user(email="disabled@example.com")
    upstream = factory.user(email="google@example.com")
    update_user(app, invited.id, status="invited")
    update_user(app, disabled.id, status="disabled")
    update_user(app, upstream.id, login_method="google")
    wrong = error_texts(login(client, "nobody@example.com", WRONG))
    for someone in (invited, disabled, upstream):
        response = login(client, someone.email)
        assert response.status_code == 401
        assert error_texts(response) == wrong
