"""Registration by invitation, walked as the invitee does: mail, link, password, confirm."""

from __future__ import annotations

import pytest

from idp.models import AuditEvent, Contract, MailMessage, Ticket, User
from tests.concurrency import race
from tests.console_helpers import (
    BRAND_NAMES,
    HOSTS,
    NEW_PASSWORD,
    error_of,
    fetch,
    fetch_all,
    headers_for,
    hidden,
    invite,
    sign_in,
    text_of,
    update,
)
from tests.helpers import csrf_from

INVITEE = "hanako@example.com"
DAYS_14 = 14 * 86400

TEXTS = {
    "ja": {"subject": "利用者登録のご案内", "title": "利用者ログイン登録", "register": "登録",
           "or": "---または---", "google": "Googleアカウントで登録",
           "ntt": "NTT東日本ビジネスIDで登録", "omakase": "おまかせログインアカウントで登録",
           "ad": "Active Directoryアカウントで登録", "not_configured": "未設定",
           "policy": "パスワードは英大文字、英小文字、数字、記号から3種類以上を含め"
                     "8文字以上で設定してください",
           "confirm": "申込内容の確認", "method": "メールアドレス・パスワード", "done": "申込完了",
           "mismatch": "パスワードと確認用のパスワードが一致しません。",
           "expired": "有効期限（14日間）が切れています", "used": "すでに使用されています",
           "superseded": "より新しいメールが送信された", "unknown": "このURLは無効です"},
    "en": {"subject": "You are invited to register", "title": "Register your sign-in",
           "register": "Register", "or": "--- or ---", "google": "Register with Google account",
           "ntt": "Register with NTT East Business ID",
           "omakase": "Register with Omakase login account",
           "ad": "Register with Active Directory account", "not_configured": "Not configured yet",
           "policy": "Use at least 8 characters", "confirm": "Confirm your registration",
           "method": "Email address and password", "done": "Registration complete",
           "mismatch": "The password and its confirmation do not match.",
           "expired": "This link has expired", "used": "This link has already been used.",
           "superseded": "A newer mail has replaced this link",
           "unknown": "This link is not valid"},
}


@pytest.fixture
def owner(factory):
    return factory.user(email="owner@example.com", name="山田 太郎")


@pytest.fixture
def console(app, owner):
    """The owner's browser, signed in to the console."""
    http = app.test_client()
    sign_in(http, email=owner.email)
    return http


def invited_mail(console, mailbox, *, email: str = INVITEE, lang: str = "ja",
                 base_url: str = HOSTS["codec"]):
    response = invite(console, email=email, lang=lang, base_url=base_url)
    assert response.status_code == 302, response.get_data(as_text=True)[:1500]
    return mailbox.last(email)


def open_link(http, mail, *, lang: str = "ja", link: str | None = None):
    return http.get(link or mail.link, base_url="http://" + mail.host,
                    headers=headers_for(lang))


def submit_password(http, mail, page, *, password: str = NEW_PASSWORD,
                    confirmation: str | None = None, lang: str = "ja"):
    html = page.get_data(as_text=True)
    return http.post("/invitation", base_url="http://" + mail.host, headers=headers_for(lang),
                     data={"csrf_token": csrf_from(html), "ticket": hidden(html, "ticket"),
                           "password": password,
                           "password_confirmation": password if confirmation is None
                           else confirmation})


def confirm(http, mail, page, *, lang: str = "ja", nonce: str | None = None):
    html = page.get_data(as_text=True)
    return http.post("/invitation/confirm", base_url="http://" + mail.host,
                     headers=headers_for(lang),
                     data={"csrf_token": csrf_from(html), "ticket": hidden(html, "ticket"),
                           "nonce": hidden(html, "nonce") if nonce is None else nonce})


def register(app, mail, *, lang: str = "ja"):
    """The whole walk in a fresh browser; returns the done page."""
    http = app.test_client()
    page = open_link(http, mail, lang=lang)
    confirmation = submit_password(http, mail, page, lang=lang)
    return confirm(http, mail, confirmation, lang=lang)


@pytest.mark.parametrize(("brand", "lang"), [("codec", "ja"), ("codec", "en"),
                                             ("work", "ja"), ("work", "en")],
                         ids=["codec-ja", "codec-en", "work-ja", "work-en"])
def test_invitee_registers_a_password_by_the_mailed_link_and_then_signs_in(
        app, factory, mailbox, brand, lang):
    owner = factory.user(email=f"owner-{brand}@example.com", brand=brand, name="山田 太郎")
    admin_browser = app.test_client()
    sign_in(admin_browser, email=owner.email, base_url=HOSTS[brand])
    texts = TEXTS[lang]

    mail = invited_mail(admin_browser, mailbox, lang=lang, base_url=HOSTS[brand])
    assert mail.subject == f"【{BRAND_NAMES[brand, lang]}】{texts['subject']}"
    assert owner.email in mail.body and "佐藤 花子" in mail.body
    assert "http://" + mail.host == HOSTS[brand]

    invitee = app.test_client()
    page = open_link(invitee, mail, lang=lang)
    assert page.status_code == 200
    shown = text_of(page)
    for expected in (INVITEE, texts["title"], texts["policy"], texts["register"], texts["or"],
                     texts["google"], texts["not_configured"]):
        assert expected in shown
    assert (texts["ntt"] in shown) == (texts["omakase"] in shown) == (brand == "work")
    assert texts["ad"] not in shown  # the contract has not set up AD
    # Upstream buttons are there but cannot be used until the operator configures them.
    assert 'disabled data-connector="google"' in shown

    # Opening the link (as a mail scanner would) registers nothing.
    open_link(app.test_client(), mail, lang=lang)
    invited = fetch(app, User, email=INVITEE)
    assert invited.status == "invited" and invited.password_hash is None
    assert fetch(app, Ticket, user_id=invited.id, kind="invitation").used_at is None

    confirmation = submit_password(invitee, mail, page, lang=lang)
    assert confirmation.status_code == 200
    shown = text_of(confirmation)
    assert texts["confirm"] in shown and INVITEE in shown and texts["method"] in shown
    # The chosen password never travels back to the browser, not even hidden.
    assert NEW_PASSWORD not in confirmation.get_data(as_text=True)
    assert fetch(app, User, email=INVITEE).status == "invited"

    done = confirm(invitee, mail, confirmation, lang=lang)
    assert done.status_code == 200
    assert texts["done"] in text_of(done)
    assert 'action="/login"' in done.get_data(as_text=True)

    registered = fetch(app, User, email=INVITEE)
    assert registered.status == "active" and registered.login_method == "password"
    assert registered.password_hash and registered.password_changed_at
    assert registered.password_hash.startswith("$argon2id$")
    assert fetch(app, Ticket, user_id=registered.id, kind="invitation").used_at is not None
    assert "user.registered" in [e.action for e in
                                 fetch_all(app, AuditEvent, target=f"user:{registered.id}")]

    sign_in(app.test_client(), email=INVITEE, password=NEW_PASSWORD, base_url=HOSTS[brand])


@pytest.mark.parametrize(("password", "confirmation", "message"), [
    ("Short-1", None, "パスワードは8文字以上で入力してください。"),
    ("alllowercaseletters", None, "3種類以上"),
    ("P@ssw0rd", None, "よく使われている"),
    ("Hanako@Example.com", None, "メールアドレスと同じパスワードは使用できません。"),
    (NEW_PASSWORD, NEW_PASSWORD + "x", TEXTS["ja"]["mismatch"]),
], ids=["too-short", "two-classes", "common", "the-email", "mismatch"])
def test_refused_passwords_are_explained_and_keep_the_link_usable(
        app, console, mailbox, password, confirmation, message):
    mail = invited_mail(console, mailbox)
    invitee = app.test_client()
    page = open_link(invitee, mail)
    refused = submit_password(invitee, mail, page, password=password, confirmation=confirmation)
    assert refused.status_code == 400
    assert message in error_of(refused)
    assert password not in refused.get_data(as_text=True)
    # The form is shown again with the ticket, and the link still works to the end.
    confirmation_page = submit_password(invitee, mail, refused)
    assert confirm(invitee, mail, confirmation_page).status_code == 200
    assert fetch(app, User, email=INVITEE).status == "active"


def test_refusal_is_in_english_for_an_english_browser(app, console, mailbox):
    mail = invited_mail(console, mailbox, lang="en")
    invitee = app.test_client()
    page = open_link(invitee, mail, lang="en")
    refused = submit_password(invitee, mail, page, confirmation="Other-Lantern-42", lang="en")
    assert error_of(refused) == TEXTS["en"]["mismatch"]


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_an_expired_invitation_link_is_refused(app, console, mailbox, clock, lang):
    mail = invited_mail(console, mailbox)
    invitee = app.test_client()
    page = open_link(invitee, mail, lang=lang)
    clock.advance(DAYS_14 + 1)
    for response in (open_link(invitee, mail, lang=lang),
                     submit_password(invitee, mail, page, lang=lang)):
        assert response.status_code == 400
        assert TEXTS[lang]["expired"] in error_of(response)
    assert fetch(app, User, email=INVITEE).status == "invited"


def test_a_link_still_works_just_before_its_14_days_end(app, console, mailbox, clock):
    mail = invited_mail(console, mailbox)
    clock.advance(DAYS_14 - 60)
    assert register(app, mail).status_code == 200


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_used_invitation_link_is_refused(app, console, mailbox, lang):
    mail = invited_mail(console, mailbox)
    assert register(app, mail).status_code == 200
    again = open_link(app.test_client(), mail, lang=lang)
    assert again.status_code == 400
    assert TEXTS[lang]["used"] in error_of(again)


def test_a_resent_invitation_supersedes_the_first_link(app, console, mailbox):
    first = invited_mail(console, mailbox)
    invitee = app.test_client()
    old_page = open_link(invitee, first)
    second = invited_mail(console, mailbox)  # the admin invites again: a resend
    assert second.link != first.link
    assert len(fetch_all(app, User, email=INVITEE)) == 1

    stale = submit_password(invitee, first, old_page)
    assert stale.status_code == 400
    assert TEXTS["ja"]["superseded"] in error_of(stale)
    assert TEXTS["ja"]["superseded"] in error_of(open_link(invitee, first))
    assert register(app, second).status_code == 200


@pytest.mark.parametrize("tamper", [
    lambda link: link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb"),
    lambda link: link.split("?")[0],
    lambda link: link + "x" * 200,
], ids=["changed", "missing", "too-long"])
def test_a_tampered_invitation_link_is_refused(app, console, mailbox, tamper):
    mail = invited_mail(console, mailbox)
    response = open_link(app.test_client(), mail, link=tamper(mail.link))
    assert response.status_code == 400
    assert TEXTS["ja"]["unknown"] in error_of(response)


def test_a_link_of_one_brand_does_not_work_on_the_other_brands_host(app, factory, mailbox):
    owner = factory.user(email="owner-work@example.com", brand="work")
    http = app.test_client()
    sign_in(http, email=owner.email, base_url=HOSTS["work"])
    mail = invited_mail(http, mailbox, base_url=HOSTS["work"])
    response = app.test_client().get(mail.link, base_url=HOSTS["codec"])
    assert response.status_code == 400
    assert TEXTS["ja"]["unknown"] in error_of(response)


def test_two_concurrent_confirmations_register_once(app, console, mailbox):
    mail = invited_mail(console, mailbox)
    first, second = app.test_client(), app.test_client()
    confirmation = submit_password(first, mail, open_link(first, mail))
    # The second browser holds the same link and the same staged confirmation.
    other_page = open_link(second, mail).get_data(as_text=True)
    nonce = hidden(confirmation.get_data(as_text=True), "nonce")
    def post(http, page_html: str):
        data = {"csrf_token": csrf_from(page_html), "ticket": hidden(page_html, "ticket"),
                "nonce": nonce}
        return http.post("/invitation/confirm", base_url="http://" + mail.host, data=data)

    results = [r.status_code for r in race(
        lambda: post(first, confirmation.get_data(as_text=True)),
        lambda: post(second, other_page))]
    assert sorted(results) == [200, 400]
    user = fetch(app, User, email=INVITEE)
    assert user.status == "active"
    registered = [e for e in fetch_all(app, AuditEvent, target=f"user:{user.id}")
                  if e.action == "user.registered"]
    assert len(registered) == 1


def test_a_confirmation_left_too_long_asks_for_the_password_again(app, console, mailbox,
                                                                   clock):
    mail = invited_mail(console, mailbox)
    invitee = app.test_client()
    confirmation = submit_password(invitee, mail, open_link(invitee, mail))
    clock.advance(16 * 60)
    late = confirm(invitee, mail, confirmation)
    assert late.status_code == 400
    assert "もう一度パスワードを入力してください" in error_of(late)
    assert fetch(app, User, email=INVITEE).status == "invited"
    # The link itself is still good.
    assert confirm(invitee, mail, submit_password(invitee, mail, late)).status_code == 200


def test_only_the_latest_typed_password_can_be_confirmed(app, console, mailbox):
    mail = invited_mail(console, mailbox)
    tab_one, tab_two = app.test_client(), app.test_client()
    first = submit_password(tab_one, mail, open_link(tab_one, mail))
    second = submit_password(tab_two, mail, open_link(tab_two, mail), password="Green-Lamp-77")
    assert confirm(tab_one, mail, first).status_code == 400
    assert confirm(tab_two, mail, second).status_code == 200
    sign_in(app.test_client(), email=INVITEE, password="Green-Lamp-77")


def test_a_forged_confirmation_without_the_staged_password_is_refused(app, console, mailbox):
    mail = invited_mail(console, mailbox)
    invitee = app.test_client()
    page = open_link(invitee, mail)
    html = page.get_data(as_text=True)
    response = invitee.post("/invitation/confirm", base_url="http://" + mail.host,
                            data={"csrf_token": csrf_from(html),
                                  "ticket": hidden(html, "ticket"), "nonce": "guess"})
    assert response.status_code == 400
    assert fetch(app, User, email=INVITEE).status == "invited"


def test_confirming_without_csrf_token_is_refused(app, console, mailbox):
    mail = invited_mail(console, mailbox)
    invitee = app.test_client()
    confirmation = submit_password(invitee, mail, open_link(invitee, mail))
    html = confirmation.get_data(as_text=True)
    response = invitee.post("/invitation/confirm", base_url="http://" + mail.host,
                            data={"ticket": hidden(html, "ticket"), "nonce": hidden(html, "nonce")})
    assert response.status_code == 400
    assert fetch(app, User, email=INVITEE).status == "invited"


def test_the_active_directory_button_appears_once_the_contract_has_ad(app, owner, console,
                                                                       mailbox):
    update(app, Contract, owner.contract_id, connection_id="adfs-abcdefghij0123456x")
    mail = invited_mail(console, mailbox)
    page = open_link(app.test_client(), mail)
    assert TEXTS["ja"]["ad"] in text_of(page)


def test_an_invitation_of_a_cancelled_contract_cannot_be_completed(app, owner, console,
                                                                     mailbox):
    mail = invited_mail(console, mailbox)
    update(app, Contract, owner.contract_id, status="cancelled")
    response = open_link(app.test_client(), mail)
    assert response.status_code == 403
    assert "契約者にご確認ください" in error_of(response)


def test_the_invitation_mail_is_queued_in_english_when_asked(app, console, mailbox):
    invited_mail(console, mailbox, lang="en")
    message = fetch(app, MailMessage, to=INVITEE)
    assert message.lang == "en" and message.kind == "invitation"
    assert fetch(app, User, email=INVITEE).locale == "en"
