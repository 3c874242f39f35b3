"""Forgot password and the reset link (SPEC §6): same answer for everyone, then a reset
that unlocks, resets 2-step and signs the user out everywhere."""

from __future__ import annotations

import re
import threading

import pytest

from tests.helpers import PASSWORD, bearer, csrf_from, refresh, tokens_for
from tests.signin_helpers import (
    BRAND_URLS,
    CODEC,
    WORK,
    WRONG,
    audit_actions,
    configure,
    error_texts,
    fail,
    get_user,
    lang_headers,
    login,
    open_link,
    page_text,
    signed_in,
    submit_link_page,
    tampered,
    ticket_of,
    update_user,
)

NEW = "Brand-New-Pass-42"
CASES = [("codec", "ja"), ("codec", "en"), ("work", "ja"), ("work", "en")]
IDS = ["codec-ja", "codec-en", "work-ja", "work-en"]
SUBJECTS = {("codec", "ja"): "【コーデックストレージ】パスワードリセット",
            ("codec", "en"): "【Codec Storage】Password reset",
            ("work", "ja"): "【ワークストレージ】パスワードリセット",
            ("work", "en"): "【Work Storage】Password reset"}


def forgot(http, email: str, *, base_url: str = CODEC, lang: str = "ja",
           address: str | None = None):
    environ = {"REMOTE_ADDR": address} if address else {}
    page = http.get("/password/forgot", base_url=base_url, headers=lang_headers(lang),
                    environ_base=environ)
    assert page.status_code == 200
    return http.post("/password/forgot", data={"csrf_token": csrf_from(page_text(page)),
                                               "email": email},
                     base_url=base_url, headers=lang_headers(lang), environ_base=environ)


def reset_with(http, mail, password: str = NEW, confirmation: str | None = None, *,
               lang: str = "ja"):
    return submit_link_page(http, mail, lang=lang, password=password,
                            password_confirmation=password if confirmation is None
                            else confirmation)


def test_login_page_links_to_forgot_password_with_the_typed_address(client, factory):
    user = factory.user(email="typed@example.com")
    page = login(client, user.email, WRONG)
    link = re.search(r'<a href="([^"]*password/forgot[^"]*)"', page_text(page)).group(1)
    assert link.endswith(("email=typed@example.com", "email=typed%40example.com"))
    form = client.get(link.replace("&amp;", "&"))
    assert 'value="typed@example.com"' in page_text(form)
    assert "パスワードを忘れた方はこちら" in page_text(client.get("/login"))


@pytest.mark.parametrize(("brand", "lang"), CASES, ids=IDS)
def test_forgot_password_mails_a_reset_link_and_the_new_password_signs_in(
        app, client, factory, mailbox, brand, lang):
    user = factory.user(email="forgot@example.com", brand=brand)
    base = BRAND_URLS[brand]
    sent = forgot(client, user.email, base_url=base, lang=lang)
    assert sent.status_code == 200
    mail = mailbox.last(user.email)
    # The mail speaks the language of the person who asked for it.
    assert mail.subject == SUBJECTS[(brand, lang)]
    assert mail.link.startswith("/password/reset?ticket=")

    form = open_link(client, mail, lang=lang)
    assert form.status_code == 200
    policy = ("英大文字、英小文字、数字、記号から3種類以上を含め8文字以上" if lang == "ja"
              else "at least 8 characters")
    assert policy in page_text(form)
    done = reset_with(client, mail, lang=lang)
    assert done.status_code == 200
    assert (("リセットパスワードの手続きが完了いたしました。" if lang == "ja"
             else "Your password has been reset.") in page_text(done))
    assert ">OK<" in page_text(done)

    assert not signed_in(login(app.test_client(), user.email, PASSWORD, base_url=base))
    assert signed_in(login(app.test_client(), user.email, NEW, base_url=base))
    assert "password.reset" in [a for a, _ in audit_actions(app, user.id)]


def test_forgot_password_says_the_same_and_sends_nothing_for_unknown_addresses(
        app, client, factory, mailbox):
    registered = factory.user(email="known@example.com")
    invited = factory.user(email="invited@example.com")
    disabled = factory.user(email="disabled@example.com")
    upstream = factory.user(email="upstream@example.com")
    other_brand = factory.user(email="elsewhere@example.com", brand="work")
    update_user(app, invited.id, status="invited")
    update_user(app, disabled.id, status="disabled")
    update_user(app, upstream.id, login_method="google")

    def answer(email: str) -> str:
        return page_text(forgot(client, email)).replace(email, "<address>")

    expected = answer(registered.email)
    for email in ("nobody@example.com", invited.email, disabled.email, upstream.email,
                  other_brand.email):
        assert answer(email) == expected, email
        assert mailbox.to(email) == []
    assert len(mailbox.to(registered.email)) == 1


def test_forgot_password_answers_without_waiting_for_the_mail_server(
        client, factory, mailbox):
    """The answer for a registered address must not take longer than for an unknown one,
    so the SMTP round trip happens beside the response: here the server holds the
    message, and the page is already there."""
    user = factory.user(email="timing@example.com")
    mailbox.hold = threading.Event()
    response = forgot(client, user.email)
    assert response.status_code == 200
    assert mailbox.messages == []  # not yet accepted: the request did not wait for it
    mailbox.hold.set()
    assert mailbox.last(user.email).subject.endswith("パスワードリセット")


def test_opening_the_reset_link_changes_nothing(app, client, factory, mailbox):
    user = factory.user(email="scanner@example.com")
    forgot(client, user.email)
    mail = mailbox.last(user.email)
    for _ in range(2):
        assert open_link(client, mail).status_code == 200
    assert signed_in(login(app.test_client(), user.email, PASSWORD))
    assert reset_with(client, mail).status_code == 200


@pytest.mark.parametrize(("password", "confirmation", "ja", "en"), [
    ("short1A", "short1A", "8文字以上", "at least 8 characters"),
    ("alllowercaseletters", "alllowercaseletters", "3種類以上", "at least 3 of"),
    ("Password1", "Password1", "よく使われている", "too common"),
    (NEW, NEW + "x", "一致しません", "do not match"),
], ids=["too-short", "classes", "common", "mismatch"])
def test_a_refused_new_password_shows_why_and_keeps_the_link(
        app, client, factory, mailbox, password, confirmation, ja, en):
    user = factory.user(email="policy@example.com")
    for lang, text in (("ja", ja), ("en", en)):
        forgot(client, user.email, lang=lang)
        mail = mailbox.last(user.email)
        response = reset_with(client, mail, password, confirmation, lang=lang)
        assert response.status_code == 400
        assert any(text in e for e in error_texts(response)), error_texts(response)
    assert signed_in(login(app.test_client(), user.email, PASSWORD))
    assert reset_with(client, mail).status_code == 200


def test_password_equal_to_the_email_is_refused(app, client, factory, mailbox):
    user = factory.user(email="Same.Address-1@example.com")
    forgot(client, user.email)
    response = reset_with(client, mailbox.last(user.email.lower()),
                          "same.address-1@example.com".upper())
    assert response.status_code == 400


def test_reset_unlocks_the_account_and_resets_two_step_enrolment(app, client, factory,
                                                                   mailbox):
    user = factory.user(email="lockedout@example.com")
    fail(client, user.email, 10)
    assert get_user(app, user.id).locked_at is not None
    forgot(client, user.email)
    reset_with(client, mailbox.last(user.email))
    row = get_user(app, user.id)
    assert row.locked_at is None and row.failed_logins == 0
    assert row.two_step_reset_at is not None
    assert signed_in(login(client, user.email, NEW))


def test_reset_signs_the_user_out_everywhere(app, client, factory, mailbox):
    user = factory.user(email="everywhere@example.com")
    rp = factory.rp()
    tokens = tokens_for(client, rp, user, scope="openid profile offline_access")
    assert client.get("/signed-in").status_code == 200
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200

    other = app.test_client()
    forgot(other, user.email)
    reset_with(other, mailbox.last(user.email))

    assert client.get("/signed-in").status_code == 302  # the session is gone
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    response = refresh(client, rp, tokens["refresh_token"])
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_reset_links_expire_after_14_days(app, client, factory, mailbox, clock):
    user = factory.user(email="expired@example.com")
    forgot(client, user.email)
    mail = mailbox.last(user.email)
    forgot(client, user.email, lang="en")
    english = mailbox.last(user.email)
    clock.advance(14 * 86400)
    page = open_link(client, english)
    assert page.status_code == 410 and "expired" in error_texts(page)[0]
    # (The first link was superseded by the second before both expired.)
    assert open_link(client, mail).status_code == 410


def test_reset_link_works_once(app, client, factory, mailbox):
    user = factory.user(email="reused@example.com")
    forgot(client, user.email, lang="en")
    mail = mailbox.last(user.email)
    reset_with(client, mail, lang="en")
    page = open_link(client, mail, lang="en")
    assert page.status_code == 410 and "already been used" in error_texts(page)[0]
    # Posting the old form again does not change the password either.
    token = ticket_of(mail)
    html = page_text(client.get("/password/forgot"))
    response = client.post("/password/reset", data={"csrf_token": csrf_from(html),
                                                    "ticket": token, "password": "Other-Pass-77",
                                                    "password_confirmation": "Other-Pass-77"})
    assert response.status_code == 410
    assert signed_in(login(app.test_client(), user.email, NEW))


def test_a_newer_reset_mail_supersedes_the_older_link(app, client, factory, mailbox):
    user = factory.user(email="twice@example.com")
    forgot(client, user.email)
    first = mailbox.last(user.email)
    forgot(client, user.email)
    second = mailbox.last(user.email)
    assert first.link != second.link
    page = open_link(client, first)
    assert page.status_code == 410 and "より新しいメール" in error_texts(page)[0]
    assert reset_with(client, second).status_code == 200


def test_a_tampered_reset_link_is_unknown(app, client, factory, mailbox):
    user = factory.user(email="tampered@example.com")
    forgot(client, user.email)
    mail = mailbox.last(user.email)
    page = client.get(tampered(mail), headers=lang_headers("en"))
    assert page.status_code == 404 and "無効" in error_texts(page)[0]
    page = client.get("/password/reset?ticket=unknown", headers=lang_headers("en"))
    assert page.status_code == 404 and "not valid" in error_texts(page)[0]
    assert client.get(mail.link, base_url=WORK).status_code == 404  # another brand's host


def test_reset_mails_per_account_are_limited_silently(app, client, factory, mailbox, clock):
    configure(app, mails_per_account=2)
    user = factory.user(email="bombed@example.com")
    answers = {page_text(forgot(app.test_client(), user.email, address=f"192.0.2.{n}"))
               for n in range(4)}
    assert len(answers) == 1  # the same page every time
    assert len(mailbox.to(user.email)) == 2
    clock.advance(3600)
    forgot(client, user.email)
    assert len(mailbox.to(user.email)) == 3


def test_reset_mails_per_address_are_limited_silently(app, client, factory, mailbox):
    configure(app, mails_per_address=2)
    users = [factory.user(email=f"many{n}@example.com") for n in range(3)]
    for user in users:
        assert forgot(client, user.email, address="198.51.100.20").status_code == 200
    assert [len(mailbox.to(u.email)) for u in users] == [1, 1, 0]
    forgot(client, users[2].email, address="198.51.100.21")
    assert len(mailbox.to(users[2].email)) == 1


def test_forgot_password_page_is_the_same_when_the_mail_server_is_down(
        app, client, factory, mailbox, clock):
    user = factory.user(email="slowmail@example.com")
    expected = page_text(forgot(client, "nobody@example.com")).replace("nobody@", "x@")
    mailbox.fail = True
    response = forgot(client, user.email)
    assert response.status_code == 200
    assert page_text(response).replace("slowmail@", "x@") == expected
    assert mailbox.to(user.email) == []
    # The mail stays queued and goes out with the next delivery.
    mailbox.fail = False
    clock.advance(60)  # the first retry is due
    other = factory.user(email="next@example.com")
    forgot(client, other.email)
    assert mailbox.to(user.email)


def test_an_invalid_address_is_reported_on_the_form(client):
    page = client.get("/password/forgot?email=not-an-address")
    assert 'value="not-an-address"' in page_text(page)
    response = client.post("/password/forgot", data={"csrf_token": csrf_from(page_text(page)),
                                                     "email": "not-an-address"})
    assert response.status_code == 400 and error_texts(response)
