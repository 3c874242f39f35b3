"""Unlocking an account with the link of the lock mail (SPEC §4.2, §6)."""

from __future__ import annotations

import pytest

from tests.concurrency import race
from tests.helpers import query_of
from tests.signin_helpers import (
    BRAND_URLS,
    audit_actions,
    base_of,
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

CASES = [("codec", "ja"), ("codec", "en"), ("work", "ja"), ("work", "en")]
IDS = ["codec-ja", "codec-en", "work-ja", "work-en"]


def locked_user(app, client, factory, mailbox, *, email: str, brand: str = "codec",
                locale: str = "ja"):
    user = factory.user(email=email, brand=brand)
    update_user(app, user.id, locale=locale)
    fail(client, email, 10, base_url=BRAND_URLS[brand])
    assert get_user(app, user.id).locked_at is not None
    return user, mailbox.last(email)


@pytest.mark.parametrize(("brand", "lang"), CASES, ids=IDS)
def test_opening_the_unlock_link_only_asks_and_the_button_unlocks(
        app, client, factory, mailbox, brand, lang):
    user, mail = locked_user(app, client, factory, mailbox, email="unlock@example.com",
                             brand=brand, locale=lang)
    assert query_of(mail.link)["ui_locales"] == lang
    page = open_link(client, mail, lang=lang)
    assert page.status_code == 200
    html = page_text(page)
    assert ("ロックを解除する" if lang == "ja" else "Unlock") in html
    assert user.email in html
    # A mail scanner that opens the link unlocks nothing.
    open_link(client, mail, lang=lang)
    assert get_user(app, user.id).locked_at is not None

    done = submit_link_page(client, mail, lang=lang)
    assert done.status_code == 200
    assert ("ロックを解除しました" if lang == "ja" else "unlocked") in page_text(done)
    assert "/login" in page_text(done)
    row = get_user(app, user.id)
    assert row.locked_at is None and row.failed_logins == 0
    assert "user.unlocked" in [a for a, _ in audit_actions(app, user.id)]
    assert signed_in(login(app.test_client(), user.email, base_url=BRAND_URLS[brand]))


def test_unlock_link_works_once(app, client, factory, mailbox):
    _, mail = locked_user(app, client, factory, mailbox, email="once@example.com")
    assert submit_link_page(client, mail).status_code == 200
    again = open_link(client, mail)
    assert again.status_code == 410
    assert "すでに使用されています" in page_text(again)


@pytest.mark.parametrize(("locale", "text"), [("ja", "有効期限"), ("en", "expired")])
def test_unlock_link_expires_after_14_days(app, client, factory, mailbox, clock, locale,
                                           text):
    user, mail = locked_user(app, client, factory, mailbox, email="late@example.com",
                             locale=locale)
    clock.advance(14 * 86400)
    # The page speaks the language of the mail, whatever the browser prefers.
    for browser in ("ja", "en"):
        page = open_link(client, mail, lang=browser)
        assert page.status_code == 410
        assert text in error_texts(page)[0]
    assert get_user(app, user.id).locked_at is not None


def test_unlock_link_of_a_reset_account_is_superseded(app, client, factory, mailbox):
    user, unlock_mail = locked_user(app, client, factory, mailbox, email="reset@example.com")
    page = client.get("/password/forgot")
    from tests.helpers import csrf_from

    client.post("/password/forgot", data={"csrf_token": csrf_from(page_text(page)),
                                          "email": user.email})
    reset_mail = mailbox.last(user.email)
    assert reset_mail.link.startswith("/password/reset")
    submit_link_page(client, reset_mail, password="Brand-New-Pass-42",
                     password_confirmation="Brand-New-Pass-42")
    page = open_link(client, unlock_mail)
    assert page.status_code == 410
    assert "より新しいメール" in error_texts(page)[0]


def test_a_tampered_unlock_link_is_unknown(app, client, factory, mailbox):
    _, mail = locked_user(app, client, factory, mailbox, email="tamper@example.com")
    for path in (tampered(mail), "/account/unlock", "/account/unlock?ticket=" + "x" * 500):
        page = client.get(path)
        assert page.status_code == 404
        assert "無効" in error_texts(page)[0]
    response = client.post(tampered(mail), data={})  # no CSRF token either
    assert response.status_code in (400, 404)


def test_unlock_without_a_csrf_token_is_refused(app, client, factory, mailbox):
    user, mail = locked_user(app, client, factory, mailbox, email="csrf@example.com")
    response = client.post("/account/unlock", data={"ticket": ticket_of(mail)},
                           base_url=base_of(mail))
    assert response.status_code == 400
    assert get_user(app, user.id).locked_at is not None


def test_unlock_link_opened_on_another_brand_is_unknown(app, client, factory, mailbox):
    _, mail = locked_user(app, client, factory, mailbox, email="brand@example.com",
                          brand="work")
    page = client.get(mail.link, base_url=BRAND_URLS["codec"], headers=lang_headers("ja"))
    assert page.status_code == 404


def test_two_concurrent_unlocks_use_the_link_once(app, client, factory, mailbox):

    user, mail = locked_user(app, client, factory, mailbox, email="race@example.com")
    browsers = [app.test_client() for _ in range(2)]
    forms = []
    for browser in browsers:
        html = page_text(open_link(browser, mail))
        from tests.helpers import csrf_from

        forms.append({"csrf_token": csrf_from(html), "ticket": ticket_of(mail)})
    statuses = [r.status_code for r in race(*[
        lambda i=i: browsers[i].post("/account/unlock", data=forms[i], base_url=base_of(mail))
        for i in range(2)])]
    assert sorted(statuses) == [200, 410]
    assert [a for a, _ in audit_actions(app, user.id)].count("user.unlocked") == 1
