"""Email change: the owner's request from the settings menu, the link to the NEW address, and
the confirmation page (メールアドレス変更確認) for password users and everyone else."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from idp.db import db
from idp.models import User
from tests.concurrency import race
from tests.helpers import PASSWORD, csrf_from, refresh, tokens_for
from tests.helpers import sign_in as oidc_sign_in
from tests.settings_helpers import (
    CODEC,
    EN,
    WORK,
    audit_actions,
    contract_with_members,
    error_of,
    post,
    sign_in,
    signed_in,
    text,
    update_user,
    user_row,
)

NEW_PASSWORD = "Fresh-Start-2024"
BRANDS = {"codec": (CODEC, "127.0.0.1:5000", "コーデックストレージ", "Codec Storage"),
          "work": (WORK, "work.localhost:5000", "ワークストレージ", "Work Storage")}


def request_from_settings(client, owner: User, new: str, *, base_url: str = CODEC,
                          headers: dict[str, str] | None = None):
    signed_in(client, owner.email, base_url=base_url, headers=headers)
    response = post(client, "/settings/email", {"new_email": new, "new_email_confirmation": new},
                    base_url=base_url, headers=headers)
    assert response.status_code == 200, text(response)[:500]
    return response


def request_by_admin(app, user_id: str, new: str, *, base_url: str = CODEC,
                     lang: str = "ja") -> None:
    """What the admin console does for a user (the console is another part)."""
    with app.test_request_context(base_url=base_url):
        from idp import email_change
        from idp.notify import mail

        user = db.session.get(User, user_id)
        message = email_change.request(user, new, actor=user, lang=lang)
        db.session.commit()
        assert mail.deliver(message)


def open_link(client, mail, *, headers: dict[str, str] | None = None):
    return client.get(mail.link, base_url="http://" + mail.host, headers=headers)


def confirm(client, mail, *, password: str | None = NEW_PASSWORD,
            confirmation: str | None = None, headers: dict[str, str] | None = None):
    page = open_link(client, mail, headers=headers)
    token = parse_qs(urlsplit(mail.link).query)["ticket"][0]
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "ticket": token}
    if password is not None:
        data.update(password=password,
                    password_confirmation=password if confirmation is None else confirmation)
    return client.post("/email/confirm", data=data, base_url="http://" + mail.host,
                       headers=headers)


@pytest.fixture
def basic(app, factory):
    return contract_with_members(app, factory, plan="basic")


# -- the whole walk, as the owner would -------------------------------------------------


@pytest.mark.parametrize(("brand", "lang"), [("codec", "ja"), ("codec", "en"), ("work", "ja"),
                                             ("work", "en")])
def test_the_owner_changes_email_through_the_link_mailed_to_the_new_address(
        app, factory, client, mailbox, clock, brand, lang):
    base_url, host, name_ja, name_en = BRANDS[brand]
    headers = EN if lang == "en" else None
    members = contract_with_members(app, factory, brand=brand)
    owner = members.owner
    request_from_settings(client, owner, "Moved@Example.com", base_url=base_url,
                          headers=headers)
    assert not mailbox.to(owner.email)
    mail = mailbox.last("moved@example.com")
    if lang == "ja":
        assert mail.subject == f"【{name_ja}】メールアドレス変更登録"
        assert "ご登録いただきましたメールアドレスへの変更を完了してください" in mail.body
    else:
        assert mail.subject == f"【{name_en}】Confirm your new email address"
    assert mail.host == host
    assert mail.link.startswith("/email/confirm?ticket=")

    # Opening the link (a mail scanner would too) changes nothing.
    page = open_link(client, mail, headers=headers)
    assert page.status_code == 200
    shown = text(page)
    assert "moved@example.com" in shown
    assert 'name="password"' in shown and 'name="password_confirmation"' in shown
    if lang == "ja":
        assert "パスワードと確認用のパスワードを入力し、「登録」をクリックしてください。" in shown
        assert "パスワードは英大文字、英小文字、数字、記号から3種類以上を含め8文字以上" in shown
    else:
        assert "enter a password and its confirmation" in shown
    assert user_row(app, owner.id).email == owner.email

    clock.advance(5)
    done = confirm(client, mail, headers=headers)
    assert done.status_code == 200, text(done)[:800]
    assert ("Your email address has been changed" if lang == "en"
            else "メールアドレスの変更が完了しました。") in text(done)
    assert 'href="/login"' in text(done)
    row = user_row(app, owner.id)
    assert row.email == "moved@example.com"
    assert row.two_step_reset_at is not None
    assert row.session_epoch == 1
    events = [(a, d) for a, _, d in audit_actions(app, members.contract_id)
              if a == "email.changed"]
    assert events == [("email.changed", {"old": owner.email, "new": "moved@example.com",
                                         "requested_by": f"user:{owner.id}"})]
    # The settings session ended with the change; the new address and password sign in.
    assert client.get("/settings", base_url=base_url).status_code == 302
    browser = app.test_client()
    assert sign_in(browser, owner.email, PASSWORD, base_url=base_url).status_code == 401
    assert sign_in(browser, "moved@example.com", PASSWORD, base_url=base_url).status_code == 401
    assert sign_in(browser, "moved@example.com", NEW_PASSWORD,
                   base_url=base_url).status_code == 302


def test_a_user_without_a_password_only_confirms(app, client, basic, mailbox):
    update_user(app, basic.user.id, login_method="google", password_hash=None)
    request_by_admin(app, basic.user.id, "google.user@example.com")
    mail = mailbox.last("google.user@example.com")
    page = text(open_link(client, mail))
    assert 'name="password"' not in page
    assert "変更したメールアドレスを確認のうえ、「登録」をクリックしてください。" in page
    done = confirm(client, mail, password=None)
    assert done.status_code == 200
    row = user_row(app, basic.user.id)
    assert (row.email, row.login_method, row.password_hash) == (
        "google.user@example.com", "google", None)
    assert row.two_step_reset_at is not None


def test_an_admin_sent_change_for_a_password_user_sets_the_password(app, client, basic, mailbox):
    request_by_admin(app, basic.user.id, "renamed@example.com", lang="en")
    mail = mailbox.last("renamed@example.com")
    assert mail.subject == "【Codec Storage】Confirm your new email address"
    assert confirm(client, mail).status_code == 200
    assert oidc_sign_in(app.test_client(), "/login", email="renamed@example.com",
                        password=NEW_PASSWORD).status_code == 302


# -- the form: validated fully before the ticket is used -------------------------------


@pytest.mark.parametrize(("password", "confirmation", "ja", "en"), [
    (NEW_PASSWORD, "Other-Pass-2024", "パスワードと確認用のパスワードが一致しません。",
     "do not match"),
    ("Ab1!", None, "8文字以上", "at least 8 characters"),
    ("onlylowercase", None, "3種類以上", "at least 3 of"),
    ("Password1", None, "よく使われている", "too common"),
    ("Renamed@example.com", None, "メールアドレスと同じパスワード", "must not be your email"),
], ids=["mismatch", "short", "classes", "common", "the-new-email"])
def test_password_errors_keep_the_link_usable(app, client, basic, mailbox, password,
                                              confirmation, ja, en):
    request_by_admin(app, basic.user.id, "renamed@example.com")
    mail = mailbox.last("renamed@example.com")
    refused = confirm(client, mail, password=password, confirmation=confirmation)
    assert refused.status_code == 400
    assert ja in error_of(refused)
    english = confirm(client, mail, password=password, confirmation=confirmation, headers=EN)
    assert en in error_of(english)
    assert user_row(app, basic.user.id).email == basic.user.email
    assert confirm(client, mail).status_code == 200
    assert user_row(app, basic.user.id).email == "renamed@example.com"


def test_an_address_taken_in_the_meantime_is_refused(app, factory, client, basic, mailbox):
    request_by_admin(app, basic.user.id, "wanted@example.com")
    factory.user(email="wanted@example.com", role="user", contract_id=basic.contract_id)
    response = confirm(client, mailbox.last("wanted@example.com"))
    assert response.status_code == 400
    assert "このメールアドレスはすでに使用されています。" in error_of(response)
    assert user_row(app, basic.user.id).email == basic.user.email


# -- tickets: expired, reused, superseded, tampered ------------------------------------


@pytest.mark.parametrize("headers", [None, EN], ids=["ja", "en"])
def test_an_expired_link_is_refused(app, client, clock, basic, mailbox, headers):
    request_by_admin(app, basic.user.id, "late@example.com")
    mail = mailbox.last("late@example.com")
    clock.advance(14 * 86400 + 1)
    page = open_link(client, mail, headers=headers)
    assert page.status_code == 400
    assert ("has expired" if headers else "有効期限（14日間）が切れています") in error_of(page)
    token = parse_qs(urlsplit(mail.link).query)["ticket"][0]
    login_page = client.get("/login", base_url="http://" + mail.host)
    post_ = client.post("/email/confirm", base_url="http://" + mail.host, data={
        "csrf_token": csrf_from(login_page.get_data(as_text=True)), "ticket": token,
        "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD}, headers=headers)
    assert post_.status_code == 400
    assert ("has expired" if headers else "有効期限（14日間）が切れています") in error_of(post_)
    assert user_row(app, basic.user.id).email == basic.user.email


def test_a_link_works_until_the_fourteenth_day(app, client, clock, basic, mailbox):
    request_by_admin(app, basic.user.id, "intime@example.com")
    clock.advance(14 * 86400 - 60)
    assert confirm(client, mailbox.last("intime@example.com")).status_code == 200


def test_a_used_link_cannot_be_used_again(app, client, basic, mailbox):
    request_by_admin(app, basic.user.id, "once@example.com")
    mail = mailbox.last("once@example.com")
    assert confirm(client, mail).status_code == 200
    again = open_link(client, mail)
    assert again.status_code == 400
    assert "このURLはすでに使用されています。" in error_of(again)


def test_a_newer_request_supersedes_the_older_link(app, client, basic, mailbox):
    request_by_admin(app, basic.user.id, "first@example.com")
    request_by_admin(app, basic.user.id, "second@example.com")
    old = open_link(client, mailbox.last("first@example.com"))
    assert old.status_code == 400
    assert "より新しいメールが送信されたため無効になりました" in error_of(old)
    assert confirm(client, mailbox.last("second@example.com")).status_code == 200
    assert user_row(app, basic.user.id).email == "second@example.com"


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),
    lambda t: "",
    lambda t: t + "x" * 200,
], ids=["changed", "empty", "too-long"])
def test_a_tampered_link_is_refused(app, client, basic, mailbox, tamper):
    request_by_admin(app, basic.user.id, "tamper@example.com")
    mail = mailbox.last("tamper@example.com")
    token = parse_qs(urlsplit(mail.link).query)["ticket"][0]
    page = client.get("/email/confirm", query_string={"ticket": tamper(token)},
                      base_url="http://" + mail.host)
    assert page.status_code == 400
    assert "このURLは無効です。" in error_of(page)


def test_a_link_opened_on_the_other_brands_host_is_unknown(app, client, basic, mailbox):
    request_by_admin(app, basic.user.id, "brand@example.com")
    mail = mailbox.last("brand@example.com")
    page = client.get(mail.link, base_url=WORK)
    assert page.status_code == 400
    assert "このURLは無効です。" in error_of(page)


def test_a_disabled_user_cannot_complete_the_change(app, client, basic, mailbox):
    request_by_admin(app, basic.user.id, "off@example.com")
    update_user(app, basic.user.id, status="disabled")
    page = open_link(client, mailbox.last("off@example.com"))
    assert page.status_code == 400
    assert "変更できません" in error_of(page)


def test_two_confirmations_at_once_change_the_address_once(app, basic, mailbox):
    request_by_admin(app, basic.user.id, "race@example.com")
    mail = mailbox.last("race@example.com")
    token = parse_qs(urlsplit(mail.link).query)["ticket"][0]
    browsers = [app.test_client() for _ in range(2)]
    forms = []
    for browser in browsers:
        page = open_link(browser, mail)
        forms.append({"csrf_token": csrf_from(page.get_data(as_text=True)), "ticket": token,
                      "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD})
    results = [r.status_code for r in race(*[
        lambda b=b, f=f: b.post("/email/confirm", data=f, base_url="http://" + mail.host)
        for b, f in zip(browsers, forms, strict=True)])]
    assert sorted(results) == [200, 400]
    assert [a for a, _, _ in audit_actions(app, basic.contract_id)].count("email.changed") == 1


# -- what the change ends --------------------------------------------------------------


def test_links_sent_to_the_old_address_stop_working(app, client, basic, mailbox):
    with app.app_context():
        from idp import tickets

        reset = tickets.issue("password_reset", db.session.get(User, basic.user.id))
        db.session.commit()
        old_token = reset.token
    request_by_admin(app, basic.user.id, "fresh@example.com")
    assert confirm(client, mailbox.last("fresh@example.com")).status_code == 200
    with app.app_context():
        from idp import tickets

        with pytest.raises(tickets.TicketError) as caught:
            tickets.peek(old_token, "password_reset")
        assert caught.value.reason == "superseded"


def test_the_change_ends_every_session_and_token_of_the_user(app, client, basic, mailbox, rp):
    tokens = tokens_for(app.test_client(), rp, basic.user, scope="openid offline_access",
                        prompt="consent")
    settings_browser = app.test_client()
    signed_in(settings_browser, basic.user.email)
    request_by_admin(app, basic.user.id, "cutoff@example.com")
    assert confirm(client, mailbox.last("cutoff@example.com")).status_code == 200
    refused = refresh(app.test_client(), rp, tokens["refresh_token"])
    assert refused.status_code == 400
    assert refused.json["error"] == "invalid_grant"
    userinfo = app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo.status_code == 401
    assert settings_browser.get("/settings").status_code == 302
