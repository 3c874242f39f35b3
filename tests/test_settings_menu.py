"""The settings menu (認証・契約情報変更メニュー): its own sign-in, the menu, personal items."""

from __future__ import annotations

import re

import pytest

from idp.contracts import TABLE
from idp.security import sha256_hex
from tests.helpers import PASSWORD, csrf_from, refresh, tokens_for
from tests.settings_helpers import (
    CODEC,
    EN,
    WORK,
    audit_actions,
    contract_with_members,
    error_of,
    menu_items,
    post,
    sign_in,
    signed_in,
    text,
    update_contract,
    update_user,
    user_row,
)

NEW_PASSWORD = "Brand-New-Pass-42"
ALL_ITEMS = ["login_method", "email_change", "password_change", "access_route", "two_step",
             "active_directory", "contract_details", "plan_change", "cancellation"]
#: Every item page, as the menu links it.
PATHS = {
    "login_method": "/settings/login-method",
    "email_change": "/settings/email",
    "password_change": "/settings/password",
    "access_route": "/settings/access-route",
    "two_step": "/settings/two-step",
    "active_directory": "/settings/active-directory",
    "contract_details": "/settings/contract",
    "plan_change": "/settings/plan",
    "cancellation": "/settings/cancel",
}


def cookie_header(response, name: str) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "=") and not header.startswith(name + "=;"):
            return header
    raise AssertionError(f"{name} not set: {response.headers.getlist('Set-Cookie')}")


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


# -- sign-in ----------------------------------------------------------------------------


def test_the_login_page_links_to_the_settings_sign_in(client):
    page = text(client.get("/login"))
    assert "パスワード変更、その他認証・契約情報の変更は" in page
    assert 'href="/settings/login"' in page


@pytest.mark.parametrize(("base_url", "headers", "title", "buttons"), [
    (CODEC, None, "認証・契約情報変更ログイン",
     ["Googleアカウントでログイン", "dアカウントでログイン"]),
    (WORK, None, "認証・契約情報変更ログイン",
     ["NTT東日本ビジネスIDでログイン", "おまかせログインアカウントでログイン"]),
    (CODEC, EN, "Sign in to change sign-in and contract settings",
     ["Sign in with Google account", "Sign in with Facebook account"]),
], ids=["codec-ja", "work-ja", "codec-en"])
def test_the_settings_sign_in_page_offers_password_and_upstream_buttons(
        client, base_url, headers, title, buttons):
    page = text(client.get("/settings/login", base_url=base_url, headers=headers))
    assert title in page
    assert 'name="password"' in page
    for label in buttons:  # shown, not usable until the operator configures them
        assert re.search(rf'disabled data-connector="[a-z_]+">{re.escape(label)}</button>',
                         page), label
    # AD is always usable: it asks for the connection ID, into the settings menu.
    assert 'href="/ad?purpose=settings"' in page
    if base_url == CODEC:
        assert "NTT東日本ビジネスID" not in page


def test_signing_in_opens_the_menu_in_its_own_short_lived_cookie(app, client, basic):
    response = sign_in(client, basic.owner.email)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/settings")
    header = cookie_header(response, "idp_settings")
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert "Path=/settings" in header
    assert "Max-Age" not in header and "Expires" not in header  # the server decides expiry
    # The settings sign-in is not an OIDC sign-in.
    assert "idp_session=" not in " ".join(response.headers.getlist("Set-Cookie"))
    raw = cookie_value(header)
    store = app.extensions["idp.store"]
    with app.app_context():
        assert store.get("settings:" + raw) is None
        record = store.get("settings:" + sha256_hex(raw))
    assert record["user_id"] == basic.owner.id
    assert record["epoch"] == 0
    assert client.get("/settings").status_code == 200
    assert ("settings.signed_in", f"user:{basic.owner.id}") in [
        (a, who) for a, who, _ in audit_actions(app, basic.contract_id)]


def test_the_settings_session_does_not_open_the_oidc_side_nor_the_other_way(client, basic):
    signed_in(client, basic.owner.email)
    assert client.get("/signed-in").status_code == 302  # no OIDC session
    other = client.application.test_client()
    page = other.get("/login")
    other.post("/login", data={"csrf_token": csrf_from(text(page)), "email": basic.owner.email,
                               "password": PASSWORD})
    response = other.get("/settings")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/settings/login")


def test_every_sign_in_issues_a_new_session_id_and_forgets_the_old_one(client, basic):
    first = cookie_value(cookie_header(sign_in(client, basic.owner.email), "idp_settings"))
    second = cookie_value(cookie_header(sign_in(client, basic.owner.email), "idp_settings"))
    assert first != second
    attacker = client.application.test_client()
    attacker.set_cookie("idp_settings", first, path="/settings")
    assert attacker.get("/settings").status_code == 302
    assert client.get("/settings").status_code == 200


@pytest.mark.parametrize("headers", [None, EN], ids=["ja", "en"])
def test_a_wrong_password_is_refused_without_a_session(client, basic, headers):
    response = sign_in(client, basic.owner.email, "Wrong-Horse-9", headers=headers)
    assert response.status_code == 401
    expected = ("The email address or password is incorrect" if headers
                else "メールアドレスまたはパスワードが正しくありません")
    assert expected in error_of(response)
    assert "idp_settings=" not in " ".join(response.headers.getlist("Set-Cookie"))
    assert client.get("/settings").status_code == 302


def test_a_rate_limited_sign_in_is_answered_429_with_retry_after(client, basic, monkeypatch):
    from idp import signin
    from idp.endpoints import settings_menu

    monkeypatch.setattr(settings_menu, "password_sign_in",
                        lambda *a, **k: signin.SignInResult(None, "signin_rate_limited", 429,
                                                            retry_after=120))
    response = sign_in(client, basic.owner.email)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "120"
    assert "しばらく時間をおいてから" in error_of(response)


def test_a_user_of_the_other_brand_cannot_sign_in_here(client, app, factory):
    members = contract_with_members(app, factory, brand="work")
    assert sign_in(client, members.owner.email).status_code == 401
    signed_in(client, members.owner.email, base_url=WORK)
    assert client.get("/settings", base_url=WORK).status_code == 200
    # The cookie belongs to the work host only.
    assert client.get("/settings", base_url=CODEC).status_code == 302


def test_thirty_idle_minutes_end_the_session_but_activity_keeps_it(client, clock, basic):
    signed_in(client, basic.owner.email)
    clock.advance(20 * 60)
    assert client.get("/settings").status_code == 200
    clock.advance(20 * 60)
    assert client.get("/settings").status_code == 200
    clock.advance(30 * 60 + 1)
    response = client.get("/settings")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/settings/login")


def test_even_an_active_session_ends_after_two_hours(client, clock, basic):
    signed_in(client, basic.owner.email)
    for _ in range(4):
        clock.advance(25 * 60)
        assert client.get("/settings").status_code == 200
    clock.advance(25 * 60)
    assert client.get("/settings").status_code == 302


def test_a_revoked_epoch_ends_the_session(app, client, basic):
    signed_in(client, basic.owner.email)
    with app.app_context():
        from idp import contracts
        from idp.db import db

        contracts.revoke_user_access([basic.owner.id])
        db.session.commit()
    assert client.get("/settings").status_code == 302


def test_a_disabled_user_is_out_at_once(app, client, basic):
    signed_in(client, basic.admin.email)
    update_user(app, basic.admin.id, status="disabled")
    assert client.get("/settings").status_code == 302


@pytest.mark.parametrize("headers", [None, EN], ids=["ja", "en"])
def test_sign_out_ends_the_session_for_good(client, basic, headers):
    response = sign_in(client, basic.owner.email)
    raw = cookie_value(cookie_header(response, "idp_settings"))
    out = post(client, "/settings/logout", headers=headers)
    assert out.status_code == 302
    assert any(h.startswith("idp_settings=;") for h in out.headers.getlist("Set-Cookie"))
    page = text(client.get(out.headers["Location"], headers=headers))
    assert ("You have signed out" if headers else "ログアウトしました") in page
    assert client.get("/settings").status_code == 302
    replay = client.application.test_client()
    replay.set_cookie("idp_settings", raw, path="/settings")
    assert replay.get("/settings").status_code == 302


def test_sign_out_needs_the_csrf_token(client, basic):
    signed_in(client, basic.owner.email)
    assert client.post("/settings/logout").status_code == 400
    assert client.get("/settings").status_code == 200


# -- contracts that ended ------------------------------------------------------------


@pytest.mark.parametrize("headers", [None, EN], ids=["ja", "en"])
def test_a_cancelled_contract_cannot_sign_in_here_and_says_so_after_the_right_password(
        app, client, basic, headers):
    update_contract(app, basic.contract_id, status="cancelled", cancelled_at=1)
    for member in (basic.owner, basic.user):
        response = sign_in(client, member.email, headers=headers)
        assert response.status_code == 403
        assert "idp_settings=" not in " ".join(response.headers.getlist("Set-Cookie"))
        page = text(response)
        assert ("You cannot sign in" if headers else "ログインできません") in page
        assert ("cancelled" if headers else "解約") in page
    assert client.get("/settings").status_code == 302
    # Someone who does not know the password learns nothing about the contract.
    wrong = sign_in(client, basic.owner.email, "Wrong-Horse-9", headers=headers)
    assert wrong.status_code == 401
    assert ("cancelled" if headers else "解約") not in text(wrong)


def test_the_owner_of_an_ended_trial_sees_only_plan_change(client, clock, trial):
    clock.advance(30 * 86400 + 60)
    signed_in(client, trial.owner.email)
    menu = client.get("/settings")
    assert menu_items(menu) == ["plan_change"]
    assert "トライアル期間終了後15日以内であれば" in text(menu)
    for item, path in PATHS.items():
        if item != "plan_change":
            assert client.get(path).status_code == 403, item


@pytest.mark.parametrize("role", ["admin", "user"])
def test_others_of_an_ended_trial_cannot_sign_in_here(client, clock, trial, role):
    clock.advance(30 * 86400 + 60)
    response = sign_in(client, trial.by_role(role).email)
    assert response.status_code == 403
    assert "トライアル" in text(response)
    assert "idp_settings=" not in " ".join(response.headers.getlist("Set-Cookie"))


def test_nobody_signs_in_here_fifteen_days_after_the_trial_ended(client, clock, trial):
    clock.advance(45 * 86400 + 60)
    response = sign_in(client, trial.owner.email)
    assert response.status_code == 403
    assert "idp_settings=" not in " ".join(response.headers.getlist("Set-Cookie"))


def test_a_session_ends_when_the_trial_runs_out_under_it(client, clock, trial):
    clock.advance(30 * 86400 - 60)
    signed_in(client, trial.user.email)
    assert client.get("/settings").status_code == 200
    clock.advance(120)
    assert client.get("/settings").status_code == 302


# -- the menu -----------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "role", "items"), [
    ("basic", "owner", ALL_ITEMS),
    ("basic", "admin", ["password_change"]),
    ("basic", "user", ["password_change"]),
    ("trial", "owner", ["password_change", "access_route", "two_step", "active_directory",
                        "plan_change"]),
    ("trial", "admin", ["password_change"]),
    ("trial", "user", ["password_change"]),
])
def test_the_menu_shows_exactly_what_the_person_may_do(app, factory, client, plan, role, items):
    members = contract_with_members(app, factory, plan=plan)
    signed_in(client, members.by_role(role).email)
    menu = client.get("/settings")
    page = text(menu)
    assert menu_items(menu) == items
    assert "あなたに許可されたメニューのみ表示しております。" in page
    assert "<認証情報の変更>" in page  # password change is everyone's
    assert ("<契約情報の変更>" in page) == any(
        i in items for i in ("contract_details", "plan_change", "cancellation"))
    assert ("<認証情報の設定>" in page) == ("access_route" in items)


def test_the_owners_menu_is_grouped_as_in_the_manual(client, basic):
    signed_in(client, basic.owner.email)
    page = text(client.get("/settings"))
    marks = ["<認証情報の変更>", "ログイン方法の設定", "メールアドレス変更", "パスワード変更",
             "<認証情報の設定>", "アクセス経路設定", "2段階認証設定", "Active Directory設定",
             "<契約情報の変更>", "契約情報変更", "プラン変更", "解約"]
    order = [page.index(m if m.startswith("<") else f">{m}</a>") for m in marks]
    assert order == sorted(order)


def test_the_menu_in_english_on_the_work_brand(client, app, factory):
    members = contract_with_members(app, factory, brand="work")
    signed_in(client, members.owner.email, base_url=WORK, headers=EN)
    page = text(client.get("/settings", base_url=WORK, headers=EN))
    assert "Only the items you are allowed to use are shown." in page
    assert "Work Storage" in page
    assert "Cancel the contract" in page


def test_password_change_is_only_for_password_users(app, client, basic):
    signed_in(client, basic.owner.email)
    update_user(app, basic.owner.id, login_method="google")
    assert "password_change" not in menu_items(client.get("/settings"))
    assert client.get("/settings/password").status_code == 403
    assert post(client, "/settings/password", {"current_password": PASSWORD}).status_code == 403


# -- SPEC §2: every forbidden cell is a 403, on GET and on POST --------------------------

#: SPEC §2 as the spec writes it (not read from the code under test):
#: item -> (basic owner, basic others, trial owner, trial others).
SPEC_TABLE = {
    "login_method":     ("yes", "no", "no", "no"),
    "email_change":     ("yes", "no", "no", "no"),
    "password_change":  ("yes", "yes", "yes", "yes"),
    "access_route":     ("yes", "no", "yes", "no"),
    "two_step":         ("yes", "no", "yes", "no"),
    "active_directory": ("yes", "no", "yes", "no"),
    "contract_details": ("yes", "no", "no", "no"),
    "plan_change":      ("yes", "no", "yes", "no"),
    "cancellation":     ("yes", "no", "no", "no"),
}
_COLUMNS = [("basic", "owner"), ("basic", "others"), ("trial", "owner"), ("trial", "others")]
_FORBIDDEN = [(item, plan, who) for item, row in SPEC_TABLE.items()
              for (plan, who), cell in zip(_COLUMNS, row, strict=True) if cell == "no"]


def test_the_permission_table_is_the_specs():
    assert {k: tuple("yes" if c else "no" for c in v) for k, v in TABLE.items()} == SPEC_TABLE


@pytest.mark.parametrize(("item", "plan", "who"), _FORBIDDEN,
                         ids=[f"{i}-{p}-{w}" for i, p, w in _FORBIDDEN])
def test_a_forbidden_item_is_refused_on_get_and_post(app, factory, client, item, plan, who):
    members = contract_with_members(app, factory, plan=plan)
    people = [members.owner] if who == "owner" else [members.admin, members.user]
    browsers = []
    for person in people:
        browser = app.test_client()
        signed_in(browser, person.email)
        browsers.append(browser)
    # On after the sign-ins (which pass no second factor with it off): a refused "turn it
    # off" must leave it on.
    update_contract(app, members.contract_id, two_step_enabled=True)
    for person, browser in zip(people, browsers, strict=True):
        page = browser.get(PATHS[item])
        assert page.status_code == 403, (item, person.role)
        assert "この操作を行う権限がありません。" in text(page)
        form = {"acknowledged": "yes", "step": "confirm", "route": "line-only",
                "two_step": "disabled", "new_email": "x@example.com",
                "new_email_confirmation": "x@example.com", "method": "password",
                "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD}
        response = post(browser, PATHS[item], form)
        assert response.status_code == 403, (item, person.role)
        english = browser.get(PATHS[item], headers=EN)
        assert english.status_code == 403
        assert "You are not allowed to do this." in text(english)
    # Nothing changed for anyone.
    with app.app_context():
        from idp.db import db
        from idp.models import Contract

        row = db.session.get(Contract, members.contract_id)
        assert (row.status, row.plan, row.access_route, row.two_step_enabled, row.ad_settings,
                row.connection_id) == ("active", plan, "line+internet", True, None, None)
    for person in people:
        row = user_row(app, person.id)
        assert (row.email, row.login_method, row.session_epoch) == (person.email, "password", 0)
    assert not [a for a, _, _ in audit_actions(app, members.contract_id)
                if a.startswith(("contract.", "login_method.", "email"))]


def test_item_pages_send_strangers_to_the_settings_sign_in(client):
    for path in PATHS.values():
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].endswith("/settings/login")


# -- password change -----------------------------------------------------------------


def change_password(client, current: str, new: str, confirmation: str | None = None, **kw):
    return post(client, "/settings/password", {
        "current_password": current, "new_password": new,
        "new_password_confirmation": new if confirmation is None else confirmation}, **kw)


@pytest.mark.parametrize("role", ["owner", "admin", "user"])
def test_password_change_walk(app, client, basic, role):
    person = basic.by_role(role)
    signed_in(client, person.email)
    form = client.get("/settings/password")
    hint = "パスワードは英大文字、英小文字、数字、記号から3種類以上を含め8文字以上で設定して"
    assert hint in text(form)
    assert "現在のパスワード" in text(form)
    done = change_password(client, PASSWORD, NEW_PASSWORD)
    assert done.status_code == 200
    assert "パスワード変更完了" in text(done)
    assert "認証・契約者情報メニューへ" in text(done)
    # This browser stays in the menu under the new epoch.
    assert client.get("/settings").status_code == 200
    assert ("password.changed", f"user:{person.id}") in [
        (a, w) for a, w, _ in audit_actions(app, basic.contract_id)]
    browser = app.test_client()
    assert sign_in(browser, person.email, PASSWORD).status_code == 401
    assert sign_in(browser, person.email, NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(("new", "confirmation", "ja", "en"), [
    ("short1A!", "short1A", "パスワードと確認用のパスワードが一致しません。",
     "The password and its confirmation do not match."),
    ("Ab1!", None, "パスワードは8文字以上で入力してください。",
     "The password must have at least 8 characters."),
    ("alllowercase", None, "3種類以上", "at least 3 of"),
    ("Password1", None, "よく使われているため", "too common"),
    (PASSWORD, None, "現在と異なるパスワード", "must differ from the current one"),
], ids=["mismatch", "short", "classes", "common", "same"])
def test_password_change_shows_policy_errors_and_changes_nothing(
        app, client, basic, new, confirmation, ja, en):
    signed_in(client, basic.user.email)
    before = user_row(app, basic.user.id).password_hash
    response = change_password(client, PASSWORD, new, confirmation)
    assert response.status_code == 400
    assert ja in error_of(response)
    english = change_password(client, PASSWORD, new, confirmation, headers=EN)
    assert en in error_of(english)
    assert user_row(app, basic.user.id).password_hash == before


def test_a_wrong_current_password_is_refused_and_five_end_the_session(app, client, basic):
    signed_in(client, basic.user.email)
    for _ in range(4):
        response = change_password(client, "Wrong-Horse-9", NEW_PASSWORD)
        assert response.status_code == 400
        assert "現在のパスワードが正しくありません。" in error_of(response)
    fifth = change_password(client, "Wrong-Horse-9", NEW_PASSWORD)
    assert fifth.status_code == 401
    assert client.get("/settings").status_code == 302
    assert sign_in(app.test_client(), basic.user.email, PASSWORD).status_code == 302


def test_password_change_ends_the_users_other_sessions_and_tokens(app, client, basic, rp):
    tokens = tokens_for(app.test_client(), rp, basic.user, scope="openid offline_access",
                        prompt="consent")
    other = app.test_client()
    signed_in(other, basic.user.email)
    signed_in(client, basic.user.email)
    assert change_password(client, PASSWORD, NEW_PASSWORD).status_code == 200
    assert other.get("/settings").status_code == 302
    refused = refresh(app.test_client(), rp, tokens["refresh_token"])
    assert refused.status_code == 400
    assert refused.json["error"] == "invalid_grant"
    userinfo = app.test_client().get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert userinfo.status_code == 401


# -- email change request (the owner's own) ------------------------------------------


def request_change(client, new: str, confirmation: str | None = None, **kw):
    return post(client, "/settings/email", {
        "new_email": new, "new_email_confirmation": new if confirmation is None else confirmation},
        **kw)


def test_the_owner_requests_an_email_change_and_the_mail_goes_to_the_new_address(
        app, client, basic, mailbox):
    signed_in(client, basic.owner.email)
    form = text(client.get("/settings/email"))
    assert "新しくログインに使用するメールアドレスを入力してください。" in form
    sent = request_change(client, "New.Owner@Example.com")
    assert sent.status_code == 200
    assert "new.owner@example.com" in text(sent)
    mail = mailbox.last("new.owner@example.com")
    assert mail.subject == "【コーデックストレージ】メールアドレス変更登録"
    assert mail.link.startswith("/email/confirm?ticket=")
    assert not mailbox.to(basic.owner.email)
    # Nothing changes until the link is used.
    assert user_row(app, basic.owner.id).email == basic.owner.email
    assert ("email_change.requested", f"user:{basic.owner.id}") in [
        (a, w) for a, w, _ in audit_actions(app, basic.contract_id)]


@pytest.mark.parametrize(("new", "confirmation", "message"), [
    ("a@example.com", "b@example.com", "メールアドレスと確認用のメールアドレスが一致しません。"),
    ("not-an-address", None, "メールアドレスの形式が正しくありません。"),
    ("basic-codec-user@example.com", None, "このメールアドレスはすでに使用されています。"),
    ("BASIC-codec-owner@example.com", None, "現在と同じメールアドレスです。"),
], ids=["mismatch", "invalid", "taken", "unchanged"])
def test_email_change_request_errors(client, basic, mailbox, new, confirmation, message):
    signed_in(client, basic.owner.email)
    response = request_change(client, new, confirmation)
    assert response.status_code == 400
    assert message in error_of(response)
    assert not mailbox.messages


def test_email_change_request_while_the_mail_server_is_down_is_kept(app, client, basic, mailbox):
    mailbox.fail = True
    signed_in(client, basic.owner.email)
    response = request_change(client, "later@example.com")
    assert response.status_code == 200
    assert "メールの送信に時間がかかっています" in text(response)
    with app.app_context():
        from idp.db import db
        from idp.models import MailMessage, Ticket

        assert db.session.query(Ticket).filter_by(kind="email_change").count() == 1
        assert db.session.query(MailMessage).filter_by(to="later@example.com",
                                                       status="pending").count() == 1


def test_email_change_request_is_refused_while_a_login_method_change_is_pending(
        app, client, basic, mailbox):
    with app.app_context():
        from idp import tickets
        from idp.db import db
        from idp.models import User

        tickets.issue("login_method_change", db.session.get(User, basic.owner.id))
        db.session.commit()
    signed_in(client, basic.owner.email)
    response = request_change(client, "new@example.com")
    assert response.status_code == 400
    assert "ログイン方法の変更手続き中のため" in error_of(response)


# -- login method (the owner's own) --------------------------------------------------


@pytest.mark.parametrize(("base_url", "present", "absent"), [
    (CODEC, ["Googleアカウント", "Facebookアカウント", "Microsoftアカウント", "dアカウント"],
     ["NTT東日本ビジネスID", "Active Directoryアカウント"]),
    (WORK, ["NTT東日本ビジネスID", "おまかせログインアカウント"], ["Active Directoryアカウント"]),
], ids=["codec", "work"])
def test_the_login_method_page_shows_the_current_method_and_never_ad_for_the_owner(
        app, factory, client, base_url, present, absent):
    members = contract_with_members(app, factory, brand="codec" if base_url == CODEC else "work")
    signed_in(client, members.owner.email, base_url=base_url)
    page = text(client.get("/settings/login-method", base_url=base_url))
    assert re.search(r'class="current-method">メールアドレス・パスワード<', page)
    assert "<ログインに使用しているパスワードの変更>" in page
    buttons = re.findall(r'disabled data-connector="[a-z_]+">([^<]+)</button>', page)
    for label in present:
        assert any(label in b for b in buttons), (label, buttons)
    for label in absent:
        assert not any(label in b for b in buttons), (label, buttons)
    assert "契約者は、Active Directoryアカウントは選択できません。" in page


@pytest.mark.parametrize(("method", "status"), [("active_directory", 400), ("google", 409),
                                               ("nonsense", 400)])
def test_the_owner_cannot_pick_ad_nor_an_unconfigured_upstream(app, client, basic, method,
                                                                status):
    signed_in(client, basic.owner.email)
    response = post(client, "/settings/login-method", {"method": method})
    assert response.status_code == status
    assert user_row(app, basic.owner.id).login_method == "password"


def test_setting_the_password_method_resets_two_step_and_signs_out(app, client, clock, basic):
    tokens_for_user = user_row(app, basic.owner.id)
    assert tokens_for_user.two_step_reset_at is None
    signed_in(client, basic.owner.email)
    clock.advance(5)
    mismatch = post(client, "/settings/login-method", {
        "method": "password", "password": NEW_PASSWORD, "password_confirmation": "Other-Pass-42"})
    assert mismatch.status_code == 400
    assert "一致しません" in error_of(mismatch)
    done = post(client, "/settings/login-method", {
        "method": "password", "password": NEW_PASSWORD, "password_confirmation": NEW_PASSWORD})
    assert done.status_code == 200
    assert "変更したログイン方法でログインを実施してください" in text(done)
    assert 'href="/login"' in text(done)
    row = user_row(app, basic.owner.id)
    assert row.two_step_reset_at is not None
    assert row.session_epoch == 1
    assert client.get("/settings").status_code == 302
    events = audit_actions(app, basic.contract_id)
    assert ("login_method.changed", f"user:{basic.owner.id}") in [(a, w) for a, w, _ in events]
    assert sign_in(app.test_client(), basic.owner.email, NEW_PASSWORD).status_code == 302
