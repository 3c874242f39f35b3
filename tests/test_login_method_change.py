"""Login-method change by link: the admin leaves the email unchanged, the user opens the
mailed link, sees the current method and sets a password."""

from __future__ import annotations

import pytest

from idp.models import AuditEvent, Contract, Ticket, User
from tests.concurrency import race
from tests.console_helpers import (
    BRAND_NAMES,
    HOSTS,
    NEW_PASSWORD,
    audit_actions,
    error_of,
    fetch,
    fetch_all,
    headers_for,
    hidden,
    plain_text,
    send_email_form,
    sign_in,
    text_of,
    update,
)
from tests.helpers import PASSWORD, csrf_from, refresh, tokens_for

DAYS_14 = 14 * 86400
TEXTS = {
    "ja": {"subject": "ログイン方法の設定変更", "title": "ログイン方法の設定",
           "current": "現在ご利用中のログイン方法: メールアドレス・パスワード",
           "heading": "メールアドレス・パスワード認証の設定",
           "policy": "パスワードは英大文字、英小文字、数字、記号から3種類以上を含め"
                     "8文字以上で設定してください",
           "google": "Googleアカウントに変更", "ntt": "NTT東日本ビジネスIDに変更",
           "ad": "Active Directoryアカウントに変更",
           "facebook": "異なるFacebookアカウントへは切り替えできません",
           "done": "ログイン方法の設定変更が完了しました。",
           "mismatch": "パスワードと確認用のパスワードが一致しません。",
           "expired": "有効期限（14日間）が切れています", "used": "すでに使用されています",
           "superseded": "より新しいメールが送信された", "unknown": "このURLは無効です"},
    "en": {"subject": "Change of your sign-in method", "title": "Sign-in method",
           "current": "Your current sign-in method: Email address and password",
           "heading": "Email address and password", "policy": "Use at least 8 characters",
           "google": "Switch to Google account", "ntt": "Switch to NTT East Business ID",
           "ad": "Switch to Active Directory account",
           "facebook": "cannot switch from a registered Facebook account",
           "done": "Your sign-in method has been changed.",
           "mismatch": "The password and its confirmation do not match.",
           "expired": "This link has expired", "used": "This link has already been used.",
           "superseded": "A newer mail has replaced this link",
           "unknown": "This link is not valid"},
}


@pytest.fixture
def owner(factory):
    return factory.user(email="owner@example.com")


@pytest.fixture
def member(factory, owner):
    return factory.user(email="member@example.com", role="user", name="鈴木 一郎",
                        contract_id=owner.contract_id)


@pytest.fixture
def console(app, owner):
    http = app.test_client()
    sign_in(http, email=owner.email)
    return http


def method_change_mail(console, mailbox, user, *, base_url: str = HOSTS["codec"]):
    response = send_email_form(console, user.id, user.email, base_url=base_url)
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    return mailbox.last(user.email)


def open_link(http, mail, *, lang: str = "ja", link: str | None = None):
    return http.get(link or mail.link, base_url="http://" + mail.host, headers=headers_for(lang))


def set_password(http, mail, page, *, password: str = NEW_PASSWORD,
                 confirmation: str | None = None, lang: str = "ja"):
    html = page.get_data(as_text=True)
    return http.post("/login-method", base_url="http://" + mail.host, headers=headers_for(lang),
                     data={"csrf_token": csrf_from(html), "ticket": hidden(html, "ticket"),
                           "password": password,
                           "password_confirmation": password if confirmation is None
                           else confirmation})


def password_works(app, email: str, password: str, *, base_url: str = HOSTS["codec"]) -> bool:
    http = app.test_client()
    page = http.get("/login", base_url=base_url)
    response = http.post("/login", base_url=base_url, data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "email": email,
        "password": password})
    return response.status_code == 302


@pytest.mark.parametrize(("brand", "lang"), [("codec", "ja"), ("codec", "en"),
                                             ("work", "ja"), ("work", "en")],
                         ids=["codec-ja", "codec-en", "work-ja", "work-en"])
def test_an_unchanged_email_sends_a_method_change_link_and_the_user_sets_a_password(
        app, factory, mailbox, brand, lang):
    owner = factory.user(email=f"owner-{brand}@example.com", brand=brand)
    member = factory.user(email=f"member-{brand}@example.com", role="user", name="鈴木 一郎",
                          contract_id=owner.contract_id)
    update(app, User, member.id, locale=lang)
    console = app.test_client()
    sign_in(console, email=owner.email, base_url=HOSTS[brand])
    texts = TEXTS[lang]

    mail = method_change_mail(console, mailbox, member, base_url=HOSTS[brand])
    assert mail.subject == f"【{BRAND_NAMES[brand, lang]}】{texts['subject']}"
    assert "/login-method?ticket=" in mail.link and "http://" + mail.host == HOSTS[brand]
    assert "login_method.change_requested" in audit_actions(app, f"user:{member.id}")
    before = fetch(app, User, id=member.id)

    user_browser = app.test_client()
    page = open_link(user_browser, mail, lang=lang)
    assert page.status_code == 200
    shown = plain_text(page)
    for expected in (texts["title"], texts["current"], texts["heading"], texts["policy"],
                     texts["google"], texts["facebook"], member.email):
        assert expected in shown
    assert (texts["ntt"] in shown) == (brand == "work")
    assert texts["ad"] not in shown
    # Opening the link (a mail scanner does) changes nothing.
    open_link(app.test_client(), mail, lang=lang)
    assert fetch(app, Ticket, user_id=member.id, kind="login_method_change").used_at is None

    refused = set_password(user_browser, mail, page, confirmation="Other-Lantern-42", lang=lang)
    assert refused.status_code == 400
    assert error_of(refused) == texts["mismatch"]
    assert fetch(app, Ticket, user_id=member.id, kind="login_method_change").used_at is None

    done = set_password(user_browser, mail, refused, lang=lang)
    assert done.status_code == 200
    assert texts["done"] in text_of(done)

    after = fetch(app, User, id=member.id)
    assert after.login_method == "password"
    assert after.two_step_reset_at is not None
    assert after.session_epoch == before.session_epoch + 1
    assert after.password_changed_at is not None
    assert fetch(app, Ticket, user_id=member.id, kind="login_method_change").used_at
    event = fetch(app, AuditEvent, action="login_method.changed")
    assert event.target == f"user:{member.id}" and event.details["login_method"] == "password"
    assert password_works(app, member.email, NEW_PASSWORD, base_url=HOSTS[brand])
    assert not password_works(app, member.email, PASSWORD, base_url=HOSTS[brand])


def test_the_change_ends_the_users_sessions_and_tokens(app, console, member, mailbox, rp):
    theirs = app.test_client()
    tokens = tokens_for(theirs, rp, member, scope="openid offline_access")
    mail = method_change_mail(console, mailbox, member)
    browser = app.test_client()
    assert set_password(browser, mail, open_link(browser, mail)).status_code == 200
    assert refresh(theirs, rp, tokens["refresh_token"]).status_code == 400
    assert theirs.get("/userinfo", headers={
        "Authorization": "Bearer " + tokens["access_token"]}).status_code == 401


@pytest.mark.parametrize(("password", "message"), [
    ("Short-1", "パスワードは8文字以上で入力してください。"),
    ("alllowercaseletters", "3種類以上"),
    ("P@ssw0rd", "よく使われている"),
    ("Member@Example.com", "メールアドレスと同じパスワードは使用できません。"),
], ids=["too-short", "two-classes", "common", "the-email"])
def test_a_refused_password_keeps_the_link_usable(app, console, member, mailbox, password,
                                                  message):
    mail = method_change_mail(console, mailbox, member)
    browser = app.test_client()
    refused = set_password(browser, mail, open_link(browser, mail), password=password)
    assert refused.status_code == 400
    assert message in error_of(refused)
    assert password_works(app, member.email, PASSWORD)
    assert set_password(browser, mail, refused).status_code == 200


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_an_expired_method_change_link_is_refused(app, console, member, mailbox, clock, lang):
    mail = method_change_mail(console, mailbox, member)
    browser = app.test_client()
    page = open_link(browser, mail, lang=lang)
    clock.advance(DAYS_14 + 1)
    for response in (open_link(browser, mail, lang=lang),
                     set_password(browser, mail, page, lang=lang)):
        assert response.status_code == 400
        assert TEXTS[lang]["expired"] in error_of(response)
    assert password_works(app, member.email, PASSWORD)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_used_method_change_link_is_refused(app, console, member, mailbox, lang):
    mail = method_change_mail(console, mailbox, member)
    browser = app.test_client()
    page = open_link(browser, mail)
    assert set_password(browser, mail, page).status_code == 200
    again = set_password(browser, mail, page, password="Green-Lamp-77", lang=lang)
    assert again.status_code == 400
    assert TEXTS[lang]["used"] in error_of(again)
    assert password_works(app, member.email, NEW_PASSWORD)


def test_a_newer_method_change_link_supersedes_the_first(app, console, member, mailbox):
    first = method_change_mail(console, mailbox, member)
    second = method_change_mail(console, mailbox, member)
    assert first.link != second.link
    response = open_link(app.test_client(), first)
    assert response.status_code == 400
    assert TEXTS["ja"]["superseded"] in error_of(response)
    browser = app.test_client()
    assert set_password(browser, second, open_link(browser, second)).status_code == 200


@pytest.mark.parametrize("tamper", [
    lambda link: link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb"),
    lambda link: link.split("?")[0],
], ids=["changed", "missing"])
def test_a_tampered_method_change_link_is_refused(app, console, member, mailbox, tamper):
    mail = method_change_mail(console, mailbox, member)
    response = open_link(app.test_client(), mail, link=tamper(mail.link))
    assert response.status_code == 400
    assert TEXTS["ja"]["unknown"] in error_of(response)


def test_an_invitation_link_is_not_a_method_change_link(app, console, member, mailbox):
    mail = method_change_mail(console, mailbox, member)
    response = app.test_client().get(mail.link.replace("/login-method", "/invitation"),
                                     base_url="http://" + mail.host)
    assert response.status_code == 400


def test_two_concurrent_submissions_change_once(app, console, member, mailbox):
    mail = method_change_mail(console, mailbox, member)
    browsers = [app.test_client(), app.test_client()]
    pages = [open_link(b, mail).get_data(as_text=True) for b in browsers]
    def post(http, html: str, password: str):
        data = {"csrf_token": csrf_from(html), "ticket": hidden(html, "ticket"),
                "password": password, "password_confirmation": password}
        return http.post("/login-method", base_url="http://" + mail.host, data=data)

    results = [r.status_code for r in race(
        lambda: post(browsers[0], pages[0], NEW_PASSWORD),
        lambda: post(browsers[1], pages[1], "Green-Lamp-77"))]
    assert sorted(results) == [200, 400]
    changed = [e for e in fetch_all(app, AuditEvent, target=f"user:{member.id}")
               if e.action == "login_method.changed"]
    assert len(changed) == 1
    assert password_works(app, member.email, NEW_PASSWORD) != password_works(
        app, member.email, "Green-Lamp-77")


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_no_method_change_while_an_email_change_is_pending(app, console, member, mailbox, lang):
    update(app, User, member.id, locale=lang)
    assert send_email_form(console, member.id, "renamed@example.com").status_code == 302
    detail = console.get(f"/admin/users/{member.id}", base_url=HOSTS["codec"],
                         headers=headers_for(lang))
    assert "renamed@example.com" in text_of(detail)  # the pending change is shown

    page = console.get(f"/admin/users/{member.id}", base_url=HOSTS["codec"],
                       headers=headers_for(lang)).get_data(as_text=True)
    response = console.post(f"/admin/users/{member.id}/email", base_url=HOSTS["codec"],
                            headers=headers_for(lang),
                            data={"csrf_token": csrf_from(page), "email": member.email})
    assert response.status_code == 400
    assert error_of(response) == {
        "ja": "ログイン方法の変更とメールアドレス変更は同時に実施できません。"
              "メールアドレス変更実施後、ログイン方法の変更を実施してください。",
        "en": "A sign-in method change and an email change cannot be under way at the same "
              "time. Please complete the email change first, then change the sign-in method.",
    }[lang]
    # Even a forged confirmation is refused by the service.
    confirmed = console.post(f"/admin/users/{member.id}/email", base_url=HOSTS["codec"],
                             data={"csrf_token": csrf_from(page), "email": member.email,
                                   "confirmed": "yes"})
    assert confirmed.status_code == 400
    assert mailbox.to(member.email) == []
    assert fetch_all(app, Ticket, user_id=member.id, kind="login_method_change") == []


def test_no_email_change_while_a_method_change_is_pending(app, console, member, mailbox):
    method_change_mail(console, mailbox, member)
    page = console.get(f"/admin/users/{member.id}", base_url=HOSTS["codec"])
    assert "ログイン方法の変更の手続き中です。" in text_of(page)
    response = console.post(f"/admin/users/{member.id}/email", base_url=HOSTS["codec"],
                            data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                  "email": "renamed@example.com", "confirmed": "yes"})
    assert response.status_code == 400
    assert "ログイン方法の変更手続き中" in error_of(response)
    assert mailbox.to("renamed@example.com") == []


def test_once_the_email_change_is_expired_the_method_change_may_be_sent(app, console, member,
                                                                        mailbox, clock):
    send_email_form(console, member.id, "renamed@example.com")
    clock.advance(DAYS_14 + 1)
    sign_in(console, email="owner@example.com")  # the console session has expired meanwhile
    assert method_change_mail(console, mailbox, member).link


def test_the_active_directory_option_appears_once_the_contract_has_ad(app, owner, console,
                                                                       member, mailbox):
    update(app, Contract, owner.contract_id, connection_id="adfs-abcdefghij0123456x")
    mail = method_change_mail(console, mailbox, member)
    page = open_link(app.test_client(), mail)
    assert TEXTS["ja"]["ad"] in text_of(page)


def test_the_page_shows_an_upstream_method_as_current(app, console, member, mailbox):
    mail = method_change_mail(console, mailbox, member)
    update(app, User, member.id, login_method="google", password_hash=None)
    page = open_link(app.test_client(), mail, lang="en")
    assert "Your current sign-in method: Google account" in plain_text(page)


def test_a_disabled_users_link_no_longer_works(app, console, member, mailbox):
    mail = method_change_mail(console, mailbox, member)
    page = console.get(f"/admin/users/{member.id}", base_url=HOSTS["codec"])
    console.post(f"/admin/users/{member.id}/disable", base_url=HOSTS["codec"],
                 data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    browser = app.test_client()
    response = open_link(browser, mail)
    assert response.status_code in (400, 403)
    assert fetch(app, User, id=member.id).status == "disabled"
