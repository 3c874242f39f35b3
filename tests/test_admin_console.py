"""The contract console: who may use it, tenant isolation, the user list, invitations,
roles, disabling, and the email form that sends email-change or login-method links."""

from __future__ import annotations

import html as html_lib
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from idp.models import AuditEvent, Contract, MailMessage, Ticket, User
from tests.concurrency import race
from tests.console_helpers import (
    HOSTS,
    audit_actions,
    error_of,
    fetch,
    fetch_all,
    headers_for,
    invite,
    notices_of,
    send_email_form,
    sign_in,
    submit,
    text_of,
    update,
)
from tests.helpers import PASSWORD, csrf_from, refresh, tokens_for

CODEC = HOSTS["codec"]


@pytest.fixture
def owner(factory):
    return factory.user(email="owner@example.com", name="山田 太郎")


@pytest.fixture
def member(factory, owner):
    return factory.user(email="member@example.com", role="user", name="鈴木 一郎",
                        contract_id=owner.contract_id)


@pytest.fixture
def admin(factory, owner):
    return factory.user(email="admin@example.com", role="admin", name="田中 次郎",
                        contract_id=owner.contract_id)


@pytest.fixture
def stranger(factory):
    """A user of another contract of the same brand."""
    other_owner = factory.user(email="other-owner@example.com")
    return factory.user(email="stranger@example.com", role="user",
                        contract_id=other_owner.contract_id)


@pytest.fixture
def console(app, owner):
    http = app.test_client()
    sign_in(http, email=owner.email)
    return http


def csrf(http, path: str = "/admin/users/invite", *, base_url: str = CODEC) -> str:
    return csrf_from(http.get(path, base_url=base_url).get_data(as_text=True))


# -- who may use the console ------------------------------------------------------------


def test_the_console_sends_a_visitor_to_sign_in_and_back(client, owner, member):
    response = client.get("/admin/users?q=member", base_url=CODEC)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == ["/admin/users?q=member"]

    login = client.get(response.headers["Location"], base_url=CODEC).get_data(as_text=True)
    data = {"csrf_token": csrf_from(login), "email": owner.email, "password": PASSWORD}
    next_field = re.search(r'name="next" value="([^"]*)"', login)
    if next_field:
        data["next"] = html_lib.unescape(next_field.group(1))
    signed_in = client.post("/login", base_url=CODEC, data=data)
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"].endswith("/admin/users?q=member")
    page = client.get(signed_in.headers["Location"], base_url=CODEC)
    assert page.status_code == 200 and "member@example.com" in text_of(page)


def test_an_action_without_a_session_changes_nothing(app, client, member):
    token = csrf_from(client.get("/login", base_url=CODEC).get_data(as_text=True))
    response = client.post(f"/admin/users/{member.id}/disable", base_url=CODEC,
                           data={"csrf_token": token})
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["Location"]).query)["next"] == ["/admin/users"]
    assert fetch(app, User, id=member.id).status == "active"


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_a_plain_user_is_refused_with_403(app, member, lang):
    http = app.test_client()
    sign_in(http, email=member.email)
    for path in ("/admin/users", "/admin/users/invite", f"/admin/users/{member.id}"):
        response = http.get(path, base_url=CODEC, headers=headers_for(lang))
        assert response.status_code == 403
    assert ("権限がありません" if lang == "ja" else "not allowed") in text_of(response)
    token = csrf_from(http.get("/login", base_url=CODEC).get_data(as_text=True))
    response = http.post("/admin/users/invite", base_url=CODEC,
                         data={"csrf_token": token, "name": "x", "email": "x@example.com",
                               "role": "admin", "lang": "ja"})
    assert response.status_code == 403
    assert fetch(app, User, email="x@example.com") is None


def test_an_admin_may_use_the_console(app, admin, member):
    http = app.test_client()
    sign_in(http, email=admin.email)
    assert http.get("/admin/users", base_url=CODEC).status_code == 200
    assert http.get(f"/admin/users/{member.id}", base_url=CODEC).status_code == 200


@pytest.mark.parametrize("ended", ["cancelled", "trial-over"])
def test_the_console_of_an_unusable_contract_is_refused(app, console, owner, clock, ended):
    if ended == "cancelled":
        update(app, Contract, owner.contract_id, status="cancelled")
    else:
        update(app, Contract, owner.contract_id, plan="trial",
               trial_ends_at=int(clock.now()) - 1)
    # The session no longer counts (sign in again, which explains) or the console refuses.
    response = console.get("/admin/users", base_url=CODEC)
    assert response.status_code in (302, 403)
    assert "owner@example.com" not in response.get_data(as_text=True)


def test_a_demoted_admin_loses_the_console_at_once(app, console, admin):
    theirs = app.test_client()
    sign_in(theirs, email=admin.email)
    assert theirs.get("/admin/users", base_url=CODEC).status_code == 200
    response = submit(console, f"/admin/users/{admin.id}", f"/admin/users/{admin.id}/role",
                      role="user")
    assert response.status_code == 302
    assert theirs.get("/admin/users", base_url=CODEC).status_code in (302, 403)


# -- tenant isolation -------------------------------------------------------------------


ACTIONS = [
    ("GET", "", {}),
    ("POST", "/role", {"role": "admin"}),
    ("POST", "/disable", {}),
    ("POST", "/enable", {}),
    ("POST", "/resend", {}),
    ("POST", "/cancel", {}),
    ("POST", "/email", {"email": "new-address@example.com"}),
    ("POST", "/email", {"email": "new-address@example.com", "confirmed": "yes"}),
    ("POST", "/email", {"email": "stranger@example.com", "confirmed": "yes"}),
]


@pytest.mark.parametrize(("method", "suffix", "data"), ACTIONS,
                         ids=["detail", "role", "disable", "enable", "resend", "cancel",
                              "email-form", "email-change", "method-change"])
def test_a_user_of_another_contract_is_not_found_by_any_page_or_action(
        app, console, stranger, mailbox, method, suffix, data):
    path = f"/admin/users/{stranger.id}{suffix}"
    if method == "GET":
        response = console.get(path, base_url=CODEC)
    else:
        response = console.post(path, base_url=CODEC, data={"csrf_token": csrf(console), **data})
    assert response.status_code == 404
    assert "stranger@example.com" not in response.get_data(as_text=True)
    unchanged = fetch(app, User, id=stranger.id)
    assert (unchanged.role, unchanged.status, unchanged.email) == ("user", "active",
                                                                  "stranger@example.com")
    assert fetch_all(app, Ticket, user_id=stranger.id) == []
    assert fetch_all(app, AuditEvent, target=f"user:{stranger.id}") == []
    assert mailbox.messages == []


def test_an_invited_user_of_another_contract_cannot_be_resent(app, factory, console, mailbox):
    other_owner = factory.user(email="other-owner@example.com")
    theirs = app.test_client()
    sign_in(theirs, email=other_owner.email)
    invite(theirs, email="their-invitee@example.com")
    invitee = fetch(app, User, email="their-invitee@example.com")
    response = console.post(f"/admin/users/{invitee.id}/resend", base_url=CODEC,
                            data={"csrf_token": csrf(console)})
    assert response.status_code == 404
    assert len(mailbox.to("their-invitee@example.com")) == 1


def test_the_list_shows_only_the_callers_contract(console, member, stranger):
    page = text_of(console.get("/admin/users", base_url=CODEC))
    assert "member@example.com" in page and "owner@example.com" in page
    assert "stranger@example.com" not in page and "other-owner@example.com" not in page
    search = text_of(console.get("/admin/users?q=stranger", base_url=CODEC))
    assert "stranger@example.com" not in search


# -- the user list ----------------------------------------------------------------------


def test_the_list_searches_email_and_name_and_pages(app, factory, owner, console):
    for n in range(24):
        factory.user(email=f"staff{n:02d}@example.com", role="user", name=f"社員 {n:02d}",
                     contract_id=owner.contract_id)
    factory.user(email="kato@example.com", role="user", name="加藤 花子",
                 contract_id=owner.contract_id)

    first = text_of(console.get("/admin/users", base_url=CODEC))
    assert "26 件" in first and "1 / 2 ページ" in first
    assert len(re.findall(r"@example\.com</td>", first)) == 20
    second = text_of(console.get("/admin/users?page=2", base_url=CODEC))
    assert len(re.findall(r"@example\.com</td>", second)) == 6
    beyond = text_of(console.get("/admin/users?page=99", base_url=CODEC))
    assert "2 / 2 ページ" in beyond

    by_name = text_of(console.get("/admin/users?q=加藤", base_url=CODEC))
    assert "kato@example.com" in by_name and "1 件" in by_name
    by_email = text_of(console.get("/admin/users?q=STAFF1", base_url=CODEC))
    assert "10 件" in by_email
    wildcard = text_of(console.get("/admin/users?q=%25", base_url=CODEC))
    assert "0 件" in wildcard


def test_the_list_speaks_english(console, member):
    page = text_of(console.get("/admin/users", base_url=CODEC, headers=headers_for("en")))
    assert "Users" in page and "Details" in page and "member@example.com" in page


# -- invitations ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "user"])
def test_inviting_creates_an_invited_user_and_mails_the_link(app, console, owner, mailbox,
                                                            role):
    response = invite(console, email="New.Person@Example.com", name="新人 さん", role=role)
    assert response.status_code == 302
    invited = fetch(app, User, email="new.person@example.com")
    assert (invited.status, invited.role, invited.contract_id, invited.password_hash) == (
        "invited", role, owner.contract_id, None)
    assert response.headers["Location"].endswith(f"/admin/users/{invited.id}")
    detail = console.get(response.headers["Location"], base_url=CODEC)
    notice = "new.person@example.com 宛に利用者登録のご案内メールを送信しました。"
    assert notice in notices_of(detail)
    assert "登録待ち" in text_of(detail)
    mail = mailbox.last("new.person@example.com")
    assert "owner@example.com" in mail.body and "/invitation?ticket=" in mail.link
    ticket = fetch(app, Ticket, user_id=invited.id, kind="invitation")
    assert ticket.issued_by == f"user:{owner.id}"
    event = fetch(app, AuditEvent, action="user.invited")
    assert (event.actor, event.target, event.contract_id) == (
        f"user:{owner.id}", f"user:{invited.id}", owner.contract_id)


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": ""}, "氏名を入力してください。"),
    ({"email": "not-an-address"}, "メールアドレスの形式が正しくありません。"),
    ({"role": "owner"}, "権限は管理者または一般ユーザを選択してください。"),
    ({"lang": "fr"}, "メールの言語は日本語または英語を選択してください。"),
], ids=["no-name", "bad-email", "owner-role", "bad-language"])
def test_an_invitation_form_with_errors_creates_nothing(app, console, mailbox, fields, message):
    data = {"name": "新人", "email": "new@example.com", "role": "user", "lang": "ja", **fields}
    response = submit(console, "/admin/users/invite", "/admin/users/invite", **data)
    assert response.status_code == 400
    assert error_of(response) == message
    assert fetch(app, User, email="new@example.com") is None
    assert mailbox.messages == []


@pytest.mark.parametrize("who", ["same-contract", "other-contract", "registered-member"])
def test_inviting_an_address_already_registered_in_the_brand_is_a_form_error(
        app, console, member, stranger, mailbox, who):
    email = {"same-contract": "owner@example.com", "other-contract": "stranger@example.com",
             "registered-member": "member@example.com"}[who]
    response = invite(console, email=email)
    assert response.status_code == 400
    assert error_of(response) == "このメールアドレスはすでに登録されています。"
    assert mailbox.messages == []
    assert len(fetch_all(app, User, email=email)) == 1


def test_the_same_address_may_be_invited_in_the_other_brand(app, factory, console, mailbox):
    factory.user(email="shared@example.com", brand="work")
    assert invite(console, email="shared@example.com").status_code == 302
    assert len(fetch_all(app, User, email="shared@example.com")) == 2


def test_inviting_the_same_person_again_resends_instead_of_failing(app, console, mailbox):
    assert invite(console, email="twice@example.com").status_code == 302
    again = invite(console, email="twice@example.com")
    assert again.status_code == 302
    assert len(fetch_all(app, User, email="twice@example.com")) == 1
    first, second = mailbox.to("twice@example.com")
    assert first.link != second.link
    user = fetch(app, User, email="twice@example.com")
    assert audit_actions(app, f"user:{user.id}") == ["user.invited", "user.invitation_resent"]
    live = [t for t in fetch_all(app, Ticket, user_id=user.id) if t.voided_at is None]
    assert len(live) == 1
    detail = console.get(again.headers["Location"], base_url=CODEC)
    assert any("再送信しました" in n for n in notices_of(detail))


def test_two_concurrent_invitations_of_one_address_make_one_user(app, owner, admin, mailbox):
    browsers = []
    for who in (owner, admin):
        http = app.test_client()
        sign_in(http, email=who.email)
        browsers.append((http, csrf(http)))
    def post(http, token: str):
        return http.post("/admin/users/invite", base_url=CODEC, data={
            "csrf_token": token, "name": "同時 さん", "email": "race@example.com",
            "role": "user", "lang": "ja"})

    results = [r.status_code for r in race(*[lambda p=p: post(*p) for p in browsers])]
    assert results == [302, 302]
    assert len(fetch_all(app, User, email="race@example.com")) == 1
    user = fetch(app, User, email="race@example.com")
    live = [t for t in fetch_all(app, Ticket, user_id=user.id) if t.voided_at is None]
    assert len(live) == 1
    assert mailbox.last("race@example.com").link


def test_the_resend_button_sends_a_new_link(app, console, mailbox):
    invite(console, email="late@example.com")
    user = fetch(app, User, email="late@example.com")
    response = submit(console, f"/admin/users/{user.id}", f"/admin/users/{user.id}/resend")
    assert response.status_code == 302
    assert len(mailbox.to("late@example.com")) == 2
    assert "user.invitation_resent" in audit_actions(app, f"user:{user.id}")


def test_cancelling_an_invitation_voids_its_link_and_frees_the_address(
        app, client, console, mailbox):
    invite(console, email="changed-mind@example.com")
    link = mailbox.last("changed-mind@example.com").link
    user = fetch(app, User, email="changed-mind@example.com")
    response = submit(console, f"/admin/users/{user.id}", f"/admin/users/{user.id}/cancel")
    assert response.status_code == 302
    assert fetch(app, User, email="changed-mind@example.com") is None
    assert "user.invitation_cancelled" in audit_actions(app, f"user:{user.id}")
    opened = client.get(link, base_url=CODEC)
    assert "このURLは無効です" in text_of(opened)
    assert invite(console, email="changed-mind@example.com").status_code == 302
    assert len(mailbox.to("changed-mind@example.com")) == 2


def test_a_registered_user_cannot_be_uninvited(app, console, member):
    response = submit(console, f"/admin/users/{member.id}", f"/admin/users/{member.id}/cancel")
    assert response.status_code == 400
    assert fetch(app, User, email=member.email).status == "active"


def test_a_registered_user_gets_no_invitation_resent(app, console, member, mailbox):
    response = submit(console, f"/admin/users/{member.id}", f"/admin/users/{member.id}/resend")
    assert response.status_code == 400
    assert "登録済み" in error_of(response)
    assert mailbox.messages == []


def test_when_the_mail_server_is_down_the_invitation_is_kept_and_mail_is_delayed(
        app, console, mailbox):
    mailbox.fail = True
    response = invite(console, email="queued@example.com")
    assert response.status_code == 302
    detail = console.get(response.headers["Location"], base_url=CODEC)
    assert any("メールの送信に時間がかかっています" in n for n in notices_of(detail))
    assert fetch(app, User, email="queued@example.com").status == "invited"
    assert fetch(app, MailMessage, to="queued@example.com").status == "pending"


def test_an_admin_can_invite_in_the_work_brand_in_english(app, factory, mailbox):
    owner = factory.user(email="boss@work.example", brand="work")
    admin = factory.user(email="admin@work.example", role="admin",
                         contract_id=owner.contract_id)
    http = app.test_client()
    sign_in(http, email=admin.email, base_url=HOSTS["work"])
    response = invite(http, email="new@work.example", lang="en", ui="en",
                      base_url=HOSTS["work"])
    assert response.status_code == 302
    detail = http.get(response.headers["Location"], base_url=HOSTS["work"],
                      headers=headers_for("en"))
    assert "An invitation mail has been sent to new@work.example." in notices_of(detail)
    mail = mailbox.last("new@work.example")
    assert mail.subject == "【Work Storage】You are invited to register"
    assert admin.email in mail.body
    assert "http://" + mail.host == HOSTS["work"]


# -- roles ------------------------------------------------------------------------------


def test_role_changes_are_audited(app, console, owner, member):
    response = submit(console, f"/admin/users/{member.id}", f"/admin/users/{member.id}/role",
                      role="admin")
    assert response.status_code == 302
    assert fetch(app, User, id=member.id).role == "admin"
    submit(console, f"/admin/users/{member.id}", f"/admin/users/{member.id}/role", role="user")
    assert fetch(app, User, id=member.id).role == "user"
    events = [e for e in fetch_all(app, AuditEvent, target=f"user:{member.id}")
              if e.action == "user.role_changed"]
    assert [(e.details["previous"], e.details["role"]) for e in events] == [
        ("user", "admin"), ("admin", "user")]
    assert {e.actor for e in events} == {f"user:{owner.id}"}


@pytest.mark.parametrize(("target", "role", "message"), [
    ("owner", "admin", "契約者に対しては"),
    ("member", "owner", "権限は管理者または一般ユーザを選択してください。"),
    ("self", "user", "ご自身に対しては"),
], ids=["owner-is-fixed", "nobody-becomes-owner", "not-yourself"])
def test_role_changes_never_touch_the_owner(app, owner, admin, member, target, role, message):
    http = app.test_client()
    sign_in(http, email=admin.email)
    user = {"owner": owner, "member": member, "self": admin}[target]
    response = submit(http, "/admin/users/invite", f"/admin/users/{user.id}/role", role=role)
    assert response.status_code == 400
    assert message in error_of(response)
    assert fetch(app, User, id=user.id).role == user.role
    assert "user.role_changed" not in audit_actions(app, f"user:{user.id}")


# -- disabling --------------------------------------------------------------------------


def test_disabling_cuts_the_user_off_and_enabling_lets_them_back(app, console, owner, member,
                                                                 rp):
    theirs = app.test_client()
    tokens = tokens_for(theirs, rp, member, scope="openid offline_access")
    assert "refresh_token" in tokens
    epoch = fetch(app, User, id=member.id).session_epoch

    response = submit(console, f"/admin/users/{member.id}", f"/admin/users/{member.id}/disable")
    assert response.status_code == 302
    disabled = fetch(app, User, id=member.id)
    assert disabled.status == "disabled" and disabled.session_epoch == epoch + 1
    assert refresh(theirs, rp, tokens["refresh_token"]).status_code == 400
    assert theirs.get("/userinfo", headers={
        "Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    refused = app.test_client()
    page = refused.get("/login", base_url=CODEC)
    assert refused.post("/login", base_url=CODEC, data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "email": member.email,
        "password": PASSWORD}).status_code != 302

    response = submit(console, f"/admin/users/{member.id}", f"/admin/users/{member.id}/enable")
    assert response.status_code == 302
    assert fetch(app, User, id=member.id).status == "active"
    sign_in(app.test_client(), email=member.email)
    actions = [a for a in audit_actions(app, f"user:{member.id}")
               if a in ("user.disabled", "user.enabled")]
    assert actions == ["user.disabled", "user.enabled"]
    event = fetch(app, AuditEvent, action="user.disabled")
    assert event.actor == f"user:{owner.id}" and event.contract_id == owner.contract_id


def test_disabling_voids_the_links_the_user_was_sent(app, console, member, mailbox):
    send_email_form(console, member.id, member.email)
    link = mailbox.last(member.email).link
    submit(console, f"/admin/users/{member.id}", f"/admin/users/{member.id}/disable")
    response = app.test_client().get(link, base_url=CODEC)
    assert response.status_code == 400


@pytest.mark.parametrize("target", ["owner", "self"])
def test_neither_the_owner_nor_yourself_can_be_disabled(app, owner, admin, target):
    http = app.test_client()
    sign_in(http, email=admin.email)
    user = owner if target == "owner" else admin
    page = http.get(f"/admin/users/{user.id}", base_url=CODEC).get_data(as_text=True)
    assert "/disable" not in page
    response = http.post(f"/admin/users/{user.id}/disable", base_url=CODEC,
                         data={"csrf_token": csrf(http)})
    assert response.status_code == 400
    assert fetch(app, User, id=user.id).status == "active"


# -- the email form: email change or login-method change --------------------------------


@pytest.mark.parametrize(("brand", "lang"), [("codec", "ja"), ("work", "en")],
                         ids=["codec-ja", "work-en"])
def test_a_changed_email_in_the_console_mails_the_new_address(app, factory, mailbox, brand,
                                                              lang):
    owner = factory.user(email=f"owner-{brand}@example.com", brand=brand)
    member = factory.user(email=f"member-{brand}@example.com", role="user",
                          contract_id=owner.contract_id)
    update(app, User, member.id, locale=lang)
    http = app.test_client()
    sign_in(http, email=owner.email, base_url=HOSTS[brand])
    detail = http.get(f"/admin/users/{member.id}", base_url=HOSTS[brand],
                      headers=headers_for(lang)).get_data(as_text=True)
    assert f'name="email" value="{member.email}"' in detail  # prefilled

    response = send_email_form(http, member.id, f"renamed-{brand}@example.com",
                               base_url=HOSTS[brand], lang=lang)
    assert response.status_code == 302
    mail = mailbox.last(f"renamed-{brand}@example.com")
    assert mail.subject.endswith("メールアドレス変更登録" if lang == "ja"
                                 else "Confirm your new email address")
    assert "/email/confirm?ticket=" in mail.link
    assert "http://" + mail.host == HOSTS[brand]
    assert mailbox.to(member.email) == []
    assert fetch(app, User, id=member.id).email == member.email  # not until confirmed
    assert "email_change.requested" in audit_actions(app, f"user:{member.id}")
    page = http.get(response.headers["Location"], base_url=HOSTS[brand],
                    headers=headers_for(lang))
    assert any(f"renamed-{brand}@example.com" in n for n in notices_of(page))


def test_the_email_form_asks_for_confirmation_before_sending(app, console, member, mailbox):
    detail = f"/admin/users/{member.id}"
    page = submit(console, detail, detail + "/email", email="renamed@example.com")
    assert page.status_code == 200
    assert "指定されたメールアドレスに確認メールを送信します。よろしいですか？" in text_of(page)
    assert mailbox.messages == []
    unchanged = submit(console, detail, detail + "/email", email=member.email)
    assert "ログイン方法の変更用のURL" in text_of(unchanged)
    assert mailbox.messages == []
    assert fetch_all(app, Ticket, user_id=member.id) == []


@pytest.mark.parametrize(("email", "message"), [
    ("not-an-address", "メールアドレスの形式が正しくありません。"),
    ("owner@example.com", "このメールアドレスはすでに使用されています。"),
], ids=["invalid", "taken"])
def test_a_wrong_new_email_is_a_form_error(app, console, member, mailbox, email, message):
    response = send_email_form_expecting_error(console, member.id, email)
    assert message in error_of(response)
    assert mailbox.messages == []


def send_email_form_expecting_error(http, user_id: str, email: str):
    detail = f"/admin/users/{user_id}"
    first = submit(http, detail, detail + "/email", email=email)
    if first.status_code == 400:
        return first
    page = first.get_data(as_text=True)
    response = http.post(detail + "/email", base_url=CODEC,
                         data={"csrf_token": csrf_from(page), "email": email,
                               "confirmed": "yes"})
    assert response.status_code == 400
    return response


def test_the_console_offers_no_email_or_method_change_for_the_owner(app, owner, admin,
                                                                    mailbox):
    http = app.test_client()
    sign_in(http, email=admin.email)
    page = http.get(f"/admin/users/{owner.id}", base_url=CODEC)
    assert f"/admin/users/{owner.id}/email" not in page.get_data(as_text=True)
    assert "認証・契約情報変更メニュー" in text_of(page)
    for email in (owner.email, "new-owner@example.com"):
        response = http.post(f"/admin/users/{owner.id}/email", base_url=CODEC,
                             data={"csrf_token": csrf(http), "email": email,
                                   "confirmed": "yes"})
        assert response.status_code == 403
    assert mailbox.messages == []
    assert fetch_all(app, Ticket, user_id=owner.id) == []


def test_an_invited_user_gets_no_email_form_but_a_resend_button(app, console):
    invite(console, email="pending@example.com")
    user = fetch(app, User, email="pending@example.com")
    page = console.get(f"/admin/users/{user.id}", base_url=CODEC).get_data(as_text=True)
    assert f"/admin/users/{user.id}/resend" in page
    assert f"/admin/users/{user.id}/email" not in page
