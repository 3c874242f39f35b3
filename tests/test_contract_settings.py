"""The owner's contract items of the settings menu: route, 2-step, AD, details, plan, cancel."""

from __future__ import annotations

import re

import pytest

from idp.db import db
from idp.models import Contract
from tests.concurrency import race
from tests.helpers import csrf_from, refresh, tokens_for
from tests.helpers import sign_in as oidc_sign_in
from tests.settings_helpers import (
    EN,
    WORK,
    audit_actions,
    contract,
    contract_with_members,
    error_of,
    menu_items,
    post,
    sign_in,
    signed_in,
    text,
    update_contract,
)

METADATA = """<?xml version="1.0" encoding="utf-8"?>
<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"
    entityID="http://adfs.example.co.jp/adfs/services/trust">
  <IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
        Location="https://adfs.example.co.jp/adfs/ls/"/>
  </IDPSSODescriptor>
</EntityDescriptor>"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&lol2;">
  <IDPSSODescriptor protocolSupportEnumeration="x"/></EntityDescriptor>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE e [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&xxe;">
  <IDPSSODescriptor protocolSupportEnumeration="x"/></EntityDescriptor>"""


@pytest.fixture
def owner_browser(client, basic):
    signed_in(client, basic.owner.email)
    return client


def actions(app, contract_id: str) -> list[str]:
    return [a for a, _, _ in audit_actions(app, contract_id)]


# -- access route ---------------------------------------------------------------------


@pytest.mark.parametrize("headers", [None, EN], ids=["ja", "en"])
def test_access_route_is_confirmed_before_it_is_stored(app, owner_browser, basic, headers):
    page = text(owner_browser.get("/settings/access-route", headers=headers))
    assert ("Line authentication + internet" if headers else "回線認証+インターネット") in page
    assert re.search(r'value="line\+internet" checked', page)
    confirm = post(owner_browser, "/settings/access-route",
                   {"route": "line-only", "step": "choose"}, headers=headers)
    assert confirm.status_code == 200
    assert ("Confirm the access route" if headers else "アクセス経路変更確認") in text(confirm)
    assert contract(app, basic.contract_id).access_route == "line+internet"
    done = post(owner_browser, "/settings/access-route",
                {"route": "line-only", "step": "confirm"}, headers=headers)
    assert done.status_code == 200
    expected = "has been changed" if headers else "アクセス経路の設定変更が完了しました。"
    assert expected in text(done)
    assert contract(app, basic.contract_id).access_route == "line-only"
    events = audit_actions(app, basic.contract_id)
    assert ("contract.access_route_changed", f"user:{basic.owner.id}",
            {"old": "line+internet", "new": "line-only"}) in events


def test_an_unknown_route_is_refused(app, owner_browser, basic):
    response = post(owner_browser, "/settings/access-route", {"route": "satellite",
                                                              "step": "confirm"})
    assert response.status_code == 400
    assert "いずれかを選択してください。" in error_of(response)
    assert contract(app, basic.contract_id).access_route == "line+internet"


# -- 2-step verification --------------------------------------------------------------


def test_disabling_two_step_shows_the_risk_and_requires_the_tick(app, owner_browser, basic):
    update_contract(app, basic.contract_id, two_step_enabled=True)
    page = text(owner_browser.get("/settings/two-step"))
    assert "第三者による不正ログインのリスクが高まります" in page
    confirm = post(owner_browser, "/settings/two-step", {"two_step": "disabled",
                                                          "step": "choose"})
    assert "上記の説明を確認しました。" in text(confirm)
    assert 'name="acknowledged"' in text(confirm)
    untick = post(owner_browser, "/settings/two-step", {"two_step": "disabled",
                                                         "step": "confirm"})
    assert untick.status_code == 400
    assert "チェックをしてください" in error_of(untick)
    assert contract(app, basic.contract_id).two_step_enabled is True
    done = post(owner_browser, "/settings/two-step", {"two_step": "disabled", "step": "confirm",
                                                       "acknowledged": "yes"})
    assert done.status_code == 200
    assert "2段階認証を無効にしました。" in text(done)
    assert contract(app, basic.contract_id).two_step_enabled is False
    assert ("contract.two_step_disabled", f"user:{basic.owner.id}", {}) in audit_actions(
        app, basic.contract_id)


def test_enabling_two_step_again_is_audited(app, owner_browser, basic):
    update_contract(app, basic.contract_id, two_step_enabled=False)
    confirm = post(owner_browser, "/settings/two-step", {"two_step": "enabled",
                                                          "step": "choose"}, headers=EN)
    assert "2-step verification will be turned on" in text(confirm)
    done = post(owner_browser, "/settings/two-step", {"two_step": "enabled", "step": "confirm"},
                headers=EN)
    assert "2-step verification is now on." in text(done)
    assert contract(app, basic.contract_id).two_step_enabled is True
    assert ("contract.two_step_enabled", f"user:{basic.owner.id}", {}) in audit_actions(
        app, basic.contract_id)


def test_under_line_only_two_step_is_shown_forced_off(app, owner_browser, basic):
    update_contract(app, basic.contract_id, access_route="line-only", two_step_enabled=True)
    page = text(owner_browser.get("/settings/two-step"))
    assert "無効（回線認証のみ）" in page
    assert 'name="two_step"' not in page
    refused = post(owner_browser, "/settings/two-step", {"two_step": "disabled",
                                                          "step": "confirm",
                                                          "acknowledged": "yes"})
    assert refused.status_code == 409
    assert contract(app, basic.contract_id).two_step_enabled is True  # the owner's choice kept
    with app.app_context():
        from idp.contract_settings import two_step_in_force

        assert not two_step_in_force(db.session.get(Contract, basic.contract_id))


def test_the_trial_owner_sets_two_step_too(app, client, trial):
    signed_in(client, trial.owner.email)
    done = post(client, "/settings/two-step", {"two_step": "disabled", "step": "confirm",
                                                "acknowledged": "yes"})
    assert done.status_code == 200
    assert contract(app, trial.contract_id).two_step_enabled is False


# -- Active Directory -----------------------------------------------------------------


def test_adfs_by_metadata_url_makes_the_connection_id_once(app, owner_browser, basic):
    done = post(owner_browser, "/settings/active-directory", {
        "type": "adfs",
        "metadata_url": "https://adfs.example.co.jp/FederationMetadata/2007-06/"
                        "FederationMetadata.xml"})
    assert done.status_code == 200, text(done)
    connection_id = contract(app, basic.contract_id).connection_id
    assert re.fullmatch(r"adfs-[a-z0-9]{18}", connection_id)
    assert connection_id in text(done)
    again = post(owner_browser, "/settings/active-directory", {
        "type": "adfs", "metadata_url": "https://adfs2.example.co.jp/metadata.xml"})
    assert again.status_code == 200
    row = contract(app, basic.contract_id)
    assert row.connection_id == connection_id
    assert row.ad_settings == {"type": "adfs",
                               "metadata_url": "https://adfs2.example.co.jp/metadata.xml"}
    assert connection_id in text(owner_browser.get("/settings/active-directory"))
    assert actions(app, basic.contract_id).count("contract.ad_settings_changed") == 2


def test_adfs_by_metadata_xml_is_parsed_for_its_entity_id(app, owner_browser, basic):
    done = post(owner_browser, "/settings/active-directory", {"type": "adfs",
                                                              "metadata_xml": METADATA})
    assert done.status_code == 200, text(done)
    settings = contract(app, basic.contract_id).ad_settings
    assert settings["entity_id"] == "http://adfs.example.co.jp/adfs/services/trust"


@pytest.mark.parametrize(("form", "message"), [
    ({"metadata_url": "http://adfs.example.co.jp/metadata.xml"}, "https:// で始まるURL"),
    ({"metadata_url": "https://user:pw@adfs.example.co.jp/m.xml"}, "https:// で始まるURL"),
    ({"metadata_xml": BILLION_LAUGHS}, "DOCTYPE宣言を含まない"),
    ({"metadata_xml": EXTERNAL_ENTITY}, "DOCTYPE宣言を含まない"),
    ({"metadata_xml": "<html><body>not metadata</body></html>"}, "読み取れません"),
    ({"metadata_xml": "<EntityDescriptor"}, "読み取れません"),
    ({}, "URLまたはXMLを入力してください"),
    ({"metadata_url": "https://a.example.com/m.xml", "metadata_xml": METADATA}, "どちらか一方のみ"),
], ids=["http", "credentials", "billion-laughs", "external-entity", "not-metadata",
        "broken", "empty", "both"])
def test_bad_adfs_settings_are_refused(app, owner_browser, basic, form, message):
    response = post(owner_browser, "/settings/active-directory", {"type": "adfs", **form})
    assert response.status_code == 400
    assert message in error_of(response)
    row = contract(app, basic.contract_id)
    assert row.ad_settings is None and row.connection_id is None


LDAP = {"type": "ldap", "ldap_url": "ldaps://dc.example.co.jp:636",
        "base_dn": "DC=example,DC=co,DC=jp",
        "bind_dn": "CN=svc-storage,OU=Service,DC=example,DC=co,DC=jp",
        "bind_password": "Bind-Secret-123", "user_attribute": "sAMAccountName"}


def test_ldap_settings_keep_the_bind_password_sealed_and_never_show_it(app, owner_browser,
                                                                       basic):
    done = post(owner_browser, "/settings/active-directory", LDAP)
    assert done.status_code == 200, text(done)
    row = contract(app, basic.contract_id)
    assert row.ad_settings["url"] == "ldaps://dc.example.co.jp:636"
    assert row.ad_settings["starttls"] is False
    assert "Bind-Secret-123" not in str(row.ad_settings)
    with app.app_context():
        from idp import ad_settings

        assert ad_settings.bind_password(row.ad_settings) == "Bind-Secret-123"
    page = text(owner_browser.get("/settings/active-directory"))
    assert "Bind-Secret-123" not in page
    assert "CN=svc-storage" in page
    assert "バインドパスワードは設定済みです" in page
    # An edit without a password keeps the stored one.
    edit = post(owner_browser, "/settings/active-directory",
                {**LDAP, "bind_password": "", "user_attribute": "userPrincipalName"})
    assert edit.status_code == 200
    row = contract(app, basic.contract_id)
    assert row.ad_settings["user_attribute"] == "userPrincipalName"
    with app.app_context():
        from idp import ad_settings

        assert ad_settings.bind_password(row.ad_settings) == "Bind-Secret-123"
    details = [d for a, _, d in audit_actions(app, basic.contract_id)
               if a == "contract.ad_settings_changed"]
    assert details and "Bind-Secret-123" not in str(details)


def test_ldap_without_tls_is_refused_and_starttls_is_accepted(app, owner_browser, basic):
    plain = post(owner_browser, "/settings/active-directory",
                 {**LDAP, "ldap_url": "ldap://dc.example.co.jp"})
    assert plain.status_code == 400
    assert "StartTLSを有効にしてください" in error_of(plain)
    assert "Bind-Secret-123" not in text(plain)
    starttls = post(owner_browser, "/settings/active-directory",
                    {**LDAP, "ldap_url": "ldap://dc.example.co.jp", "starttls": "on"})
    assert starttls.status_code == 200
    assert contract(app, basic.contract_id).ad_settings["starttls"] is True


@pytest.mark.parametrize(("change", "message"), [
    ({"ldap_url": "https://dc.example.co.jp"}, "ldaps://ホスト名"),
    ({"ldap_url": "ldaps://dc.example.co.jp/?x"}, "ldaps://ホスト名"),
    ({"base_dn": "example.co.jp"}, "DNの形式"),
    ({"bind_dn": ""}, "DNの形式"),
    ({"user_attribute": "uid)(objectClass=*"}, "属性名の形式"),
    ({"bind_password": ""}, "バインドパスワードを入力してください"),
    ({"type": ""}, "ADFSまたはLDAPを選択してください"),
], ids=["scheme", "query", "base-dn", "bind-dn", "attribute-injection", "no-password", "type"])
def test_bad_ldap_settings_are_refused(app, owner_browser, basic, change, message):
    response = post(owner_browser, "/settings/active-directory", {**LDAP, **change})
    assert response.status_code == 400
    assert message in error_of(response)
    assert contract(app, basic.contract_id).ad_settings is None


# -- contract details -----------------------------------------------------------------


def test_contract_details_are_validated_and_audited(app, owner_browser, basic):
    page = text(owner_browser.get("/settings/contract"))
    assert 'value="株式会社テスト"' in page
    done = post(owner_browser, "/settings/contract", {
        "name": "株式会社サンプル", "contact_name": "総務 花子",
        "contact_email": "Soumu@Example.co.jp", "contact_phone": "０３-１２３４-５６７８"})
    assert done.status_code == 200, text(done)
    row = contract(app, basic.contract_id)
    assert (row.name, row.contact_name, row.contact_email, row.contact_phone) == (
        "株式会社サンプル", "総務 花子", "soumu@example.co.jp", "03-1234-5678")
    event = [d for a, _, d in audit_actions(app, basic.contract_id)
             if a == "contract.details_changed"]
    assert event[0]["fields"] == ["name", "contact_name", "contact_email", "contact_phone"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("name", "", "この項目は必須です。"),
    ("contact_email", "not-an-address", "メールアドレスの形式が正しくありません。"),
    ("contact_phone", "12345", "電話番号の形式が正しくありません"),
    ("contact_phone", "03-1234-ABCD", "電話番号の形式が正しくありません"),
    ("contact_name", "x" * 201, "200文字以内"),
], ids=["name-missing", "email", "phone-short", "phone-letters", "too-long"])
def test_bad_contract_details_are_refused(app, owner_browser, basic, field, value, message):
    form = {"name": "株式会社サンプル", "contact_name": "総務 花子",
            "contact_email": "soumu@example.co.jp", "contact_phone": "03-1234-5678",
            field: value}
    response = post(owner_browser, "/settings/contract", form)
    assert response.status_code == 400
    assert re.search(rf'data-field="{field}">[^<]*{re.escape(message)}', text(response))
    assert contract(app, basic.contract_id).name == "株式会社テスト"


# -- plan change ----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [None, EN], ids=["ja", "en"])
def test_a_running_trial_changes_to_basic_after_confirmation(app, client, trial, headers):
    signed_in(client, trial.owner.email, headers=headers)
    page = text(client.get("/settings/plan", headers=headers))
    assert ("Free trial" if headers else "無料トライアル") in page
    confirm = post(client, "/settings/plan", {"step": "choose"}, headers=headers)
    assert ("Confirm the plan change" if headers else "プラン変更確認") in text(confirm)
    assert contract(app, trial.contract_id).plan == "trial"
    done = post(client, "/settings/plan", {"step": "confirm"}, headers=headers)
    assert done.status_code == 200
    expected = "now on the basic plan" if headers else "基本プランへのプラン変更が完了しました"
    assert expected in text(done)
    row = contract(app, trial.contract_id)
    assert (row.plan, row.trial_ends_at) == ("basic", None)
    assert ("contract.plan_changed", f"user:{trial.owner.id}") in [
        (a, w) for a, w, _ in audit_actions(app, trial.contract_id)]
    # The owner now has the basic owner's whole menu.
    assert len(menu_items(client.get("/settings"))) == 9


def test_a_basic_contract_has_no_other_plan(app, owner_browser, basic):
    page = text(owner_browser.get("/settings/plan"))
    assert "基本プラン" in page
    assert "現在のプランから変更可能なプランはありません。" in page
    response = post(owner_browser, "/settings/plan", {"step": "confirm"})
    assert response.status_code == 409
    assert "contract.plan_changed" not in actions(app, basic.contract_id)


def test_an_ended_trial_can_change_plan_within_15_days_and_everyone_is_back(app, client, clock,
                                                                             trial):
    clock.advance(30 * 86400 + 14 * 86400)
    refused = sign_in(app.test_client(), trial.user.email)
    assert refused.status_code == 403
    signed_in(client, trial.owner.email)
    assert menu_items(client.get("/settings")) == ["plan_change"]
    page = text(client.get("/settings/plan"))
    assert "無料トライアル期間は" in page and "に終了しました" in page
    done = post(client, "/settings/plan", {"step": "confirm"})
    assert done.status_code == 200
    assert contract(app, trial.contract_id).plan == "basic"
    signed_in(app.test_client(), trial.user.email)
    assert len(menu_items(client.get("/settings"))) == 9


def test_an_ended_trial_cannot_change_plan_after_15_days(app, client, clock, trial):
    clock.advance(30 * 86400 + 14 * 86400)
    signed_in(client, trial.owner.email)
    clock.advance(2 * 86400)
    response = post(client, "/settings/plan", {"step": "confirm"})
    assert response.status_code == 302  # the session ended with the window
    assert contract(app, trial.contract_id).plan == "trial"
    assert sign_in(app.test_client(), trial.owner.email).status_code == 403


def test_two_plan_changes_at_once_are_one_change(app, factory, trial):
    browsers = [app.test_client() for _ in range(2)]
    tokens = []
    for browser in browsers:
        signed_in(browser, trial.owner.email)
        tokens.append(csrf_from(browser.get("/settings/plan").get_data(as_text=True)))
    results = [r.status_code for r in race(*[
        lambda b=b, t=t: b.post("/settings/plan", data={"csrf_token": t, "step": "confirm"})
        for b, t in zip(browsers, tokens, strict=True)])]
    assert sorted(results)[0] == 200
    assert actions(app, trial.contract_id).count("contract.plan_changed") == 1


# -- cancellation ---------------------------------------------------------------------


def test_cancellation_needs_the_tick(app, owner_browser, basic):
    page = text(owner_browser.get("/settings/cancel"))
    assert "解約は取り消せません" in page
    response = post(owner_browser, "/settings/cancel", {})
    assert response.status_code == 400
    assert "チェックをしてください" in error_of(response)
    assert contract(app, basic.contract_id).status == "active"


def test_cancellation_cuts_off_sign_in_and_refresh_for_all_users(app, client, basic, rp):
    issued = {who.id: tokens_for(app.test_client(), rp, who, scope="openid offline_access",
                                 prompt="consent")
              for who in (basic.owner, basic.admin, basic.user)}
    admin_settings = app.test_client()
    signed_in(admin_settings, basic.admin.email)
    signed_in(client, basic.owner.email)
    done = post(client, "/settings/cancel", {"acknowledged": "yes"})
    assert done.status_code == 200
    assert "解約手続きが完了しました。" in text(done)
    assert any(h.startswith("idp_settings=;") for h in done.headers.getlist("Set-Cookie"))
    row = contract(app, basic.contract_id)
    assert row.status == "cancelled" and row.cancelled_at is not None
    assert ("contract.cancelled", f"user:{basic.owner.id}") in [
        (a, w) for a, w, _ in audit_actions(app, basic.contract_id)]
    for tokens in issued.values():
        refused = refresh(app.test_client(), rp, tokens["refresh_token"])
        assert refused.status_code == 400
        assert refused.json["error"] == "invalid_grant"
        userinfo = app.test_client().get(
            "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
        assert userinfo.status_code == 401
    for who in (basic.owner, basic.admin, basic.user):
        browser = app.test_client()
        assert oidc_sign_in(browser, "/login", email=who.email).status_code != 302
        assert sign_in(browser, who.email).status_code == 403
    assert client.get("/settings").status_code == 302
    assert admin_settings.get("/settings").status_code == 302


def test_cancellation_voids_the_links_already_mailed(app, owner_browser, basic):
    with app.app_context():
        from idp import tickets
        from idp.models import User

        issued = tickets.issue("password_reset", db.session.get(User, basic.user.id))
        db.session.commit()
        token = issued.token
    assert post(owner_browser, "/settings/cancel", {"acknowledged": "yes"}).status_code == 200
    with app.app_context():
        from idp import tickets

        with pytest.raises(tickets.TicketError) as caught:
            tickets.peek(token, "password_reset")
        assert caught.value.reason == "superseded"


def test_two_cancellations_at_once_cancel_once(app, basic):
    browsers = [app.test_client() for _ in range(2)]
    tokens = []
    for browser in browsers:
        signed_in(browser, basic.owner.email)
        tokens.append(csrf_from(browser.get("/settings/cancel").get_data(as_text=True)))
    results = [r.status_code for r in race(*[
        lambda b=b, t=t: b.post("/settings/cancel", data={"csrf_token": t,
                                                          "acknowledged": "yes"})
        for b, t in zip(browsers, tokens, strict=True)])]
    assert 200 in results
    assert actions(app, basic.contract_id).count("contract.cancelled") == 1


def test_the_work_brand_owner_cancels_in_english(app, factory, client):
    members = contract_with_members(app, factory, brand="work")
    signed_in(client, members.owner.email, base_url=WORK, headers=EN)
    page = text(client.get("/settings/cancel", base_url=WORK, headers=EN))
    assert "Cancellation cannot be undone." in page
    assert "Work Storage" in page
    done = post(client, "/settings/cancel", {"acknowledged": "yes"}, base_url=WORK, headers=EN)
    assert "The contract has been cancelled." in text(done)
    assert contract(app, members.contract_id).status == "cancelled"
    assert sign_in(app.test_client(), members.owner.email, base_url=WORK).status_code == 403
