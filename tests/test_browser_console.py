"""Page level, in a real browser: the contract console and the settings menu, in Japanese.

Headless Debian Chromium (tests/browser.py) against the provider served by granian as in
production. An owner signs in, works through the console (search, a user's detail, a
role change, "sign out everywhere" with its confirmation, an invitation, line IDs with a
malformed one refused), reads the audit events those left with a filter, then opens the
settings menu with its 2-step and access-route pages. Screenshots of every Japanese page
land in tests/artifacts/console-*.png (git-ignored) for a person to look at.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from selenium.webdriver.common.by import By

from tests.browser import (
    chromium,
    clean_artifacts,
    fill,
    next_page,
    page_path,
    screenshot,
    submit,
)
from tests.helpers import PASSWORD
from tests.live import live_provider

OWNER = "owner@example.com"
ADMIN = "jiro@example.com"
MEMBER = "hanako@example.com"
INVITEE = "ichiro@example.com"
EAST_LINE = "CAF1234567890"
WEST_LINE = "COP12345678"


def _press(driver, action_ends_with: str) -> None:
    """Press the button of the POST form whose action ends with ``action_ends_with``."""
    button = driver.find_element(
        By.CSS_SELECTOR, f"form[action$='{action_ends_with}'] button[type=submit]")
    next_page(driver, button.click)


def _click(driver, selector: str) -> None:
    next_page(driver, driver.find_element(By.CSS_SELECTOR, selector).click)


def _h1(driver) -> str:
    return driver.find_element(By.TAG_NAME, "h1").text


def _notices(driver) -> list[str]:
    return [p.text for p in driver.find_elements(By.CSS_SELECTOR, "p.notice, p.error")]


def _rows(driver, table: str) -> list[list[str]]:
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in driver.find_elements(By.CSS_SELECTOR, f"table.{table} tbody tr")]


def _shot(driver, name: str) -> None:
    """A screenshot of the whole page: the window is made as tall as the document first
    (the user detail and the audit log are longer than the window), then put back."""
    size = driver.get_window_size()
    width, height = size["width"], size["height"]
    chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
    page = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(height, page + chrome))
    try:
        screenshot(driver, name)
    finally:
        driver.set_window_size(width, height)


def _register_line(app, contract_id: str, line_id: str) -> None:
    """A line ID registered by the operator, straight into the database."""
    from idp.clock import now
    from idp.db import db
    from idp.models import ContractLine

    with app.app_context():
        db.session.add(ContractLine(contract_id=contract_id, line_id=line_id,
                                    created_at=now(), created_by="operator"))
        db.session.commit()


def test_the_console_and_the_settings_menu_in_a_japanese_browser(app, settings, factory,
                                                                 mailbox):
    clean_artifacts("console-")
    owner = factory.user(email=OWNER, name="契約 太郎", two_step=False)
    factory.user(contract_id=owner.contract_id, role="admin", email=ADMIN, name="管理 次郎")
    member = factory.user(contract_id=owner.contract_id, role="user", email=MEMBER,
                          name="利用 花子")
    factory.user(email="stranger@example.com", name="他社 三郎")  # another contract
    _register_line(app, owner.contract_id, EAST_LINE)

    with live_provider(settings) as base, chromium(lang="ja") as driver:
        # The owner signs in and lands on the users list: the contract's three people.
        driver.get(base + "/login?next=/admin/users")
        fill(driver, email=OWNER, password=PASSWORD)
        submit(driver, "password")
        assert page_path(driver) == "/admin/users", driver.title
        assert "管理コンソール" in driver.title
        assert _h1(driver) == "ユーザー一覧"
        assert driver.find_element(By.CSS_SELECTOR, "p.count").text == "3 件"
        rows = _rows(driver, "users")
        # (by creation time, then email: all three were made within one second here)
        assert sorted(r[:4] for r in rows) == [
            [MEMBER, "利用 花子", "一般ユーザ", "有効"],
            [ADMIN, "管理 次郎", "管理者", "有効"],
            [OWNER, "契約 太郎", "契約者", "有効"],
        ], rows
        assert "stranger@example.com" not in driver.page_source
        _shot(driver, "console-01-users")

        # A search by part of a name.
        fill(driver, q="花子")
        submit(driver, "q")
        assert parse_qs(urlsplit(driver.current_url).query) == {"q": ["花子"]}
        assert driver.find_element(By.CSS_SELECTOR, "p.count").text == "1 件"
        assert [r[0] for r in _rows(driver, "users")] == [MEMBER]
        _shot(driver, "console-02-search")

        # The user's detail page, from the row's link.
        _click(driver, f"a[href='/admin/users/{member.id}']")
        assert _h1(driver) == "ユーザ詳細"
        assert driver.find_element(By.CSS_SELECTOR, "dd.user-email").text == MEMBER
        assert driver.find_element(By.CSS_SELECTOR, "dd.user-role").text == "一般ユーザ"
        assert driver.find_element(By.CSS_SELECTOR, "dd.user-status").text == "有効"
        assert "権限の変更" in driver.page_source
        _shot(driver, "console-03-user-detail")

        # Make her an admin (audited).
        driver.find_element(By.CSS_SELECTOR, "input[name=role][value=admin]").click()
        _press(driver, f"/admin/users/{member.id}/role")
        assert driver.find_element(By.CSS_SELECTOR, "dd.user-role").text == "管理者"
        _shot(driver, "console-04-role-changed")

        # "Sign out everywhere": a confirmation page first, then done (audited).
        _press(driver, f"/admin/users/{member.id}/sessions/revoke")
        assert _h1(driver) == "すべての端末からログアウトさせますか?"
        assert driver.find_element(By.CSS_SELECTOR, "dd.user-email").text == MEMBER
        assert "元に戻すことはできません" in driver.find_element(
            By.CSS_SELECTOR, "p.warning").text
        _shot(driver, "console-05-confirm-sign-out-everywhere")
        _press(driver, f"/admin/users/{member.id}/sessions/revoke")
        assert page_path(driver) == f"/admin/users/{member.id}"
        assert f"{MEMBER} をすべての端末からログアウトさせました。" in _notices(driver)
        _shot(driver, "console-06-signed-out-everywhere")

        # The invitation form and its result: the invitee's page, waiting for registration.
        _click(driver, "nav.admin-nav a[href='/admin/users/invite']")
        assert _h1(driver) == "利用者登録"
        fill(driver, name="鈴木 一郎", email=INVITEE)
        driver.find_element(By.CSS_SELECTOR, "input[name=role][value=admin]").click()
        _shot(driver, "console-07-invite-form")
        submit(driver, "email")
        assert _h1(driver) == "ユーザ詳細"
        assert f"{INVITEE} 宛に利用者登録のご案内メールを送信しました。" in _notices(driver)
        assert driver.find_element(By.CSS_SELECTOR, "dd.user-status").text == "登録待ち"
        assert driver.find_element(By.CSS_SELECTOR, "dd.user-role").text == "管理者"
        assert mailbox.last(INVITEE).subject == "【コーデックストレージ】利用者登録のご案内"
        _shot(driver, "console-08-invited")

        # Line IDs: the registered one is listed; a malformed one is refused and kept in
        # the box; a good one is added (audited).
        _click(driver, "nav.admin-nav a[href='/admin/lines']")
        assert _h1(driver) == "回線認証設定"
        assert driver.find_element(By.CSS_SELECTOR, "p.access-route").text == \
            "回線認証+インターネット"
        assert [r[0] for r in _rows(driver, "lines")] == [EAST_LINE]
        fill(driver, line_id="CAF12-34")
        submit(driver, "line_id")
        error = driver.find_element(By.CSS_SELECTOR, "p.error[role=alert]").text
        assert error.startswith("回線番号が正しくありません。"), error
        assert driver.find_element(By.NAME, "line_id").get_attribute("value") == "CAF12-34"
        assert [r[0] for r in _rows(driver, "lines")] == [EAST_LINE]
        _shot(driver, "console-09-lines-invalid")
        fill(driver, line_id=WEST_LINE)
        submit(driver, "line_id")
        assert f"回線番号 {WEST_LINE} を登録しました。" in _notices(driver)
        lines = {r[0]: r for r in _rows(driver, "lines")}
        assert set(lines) == {EAST_LINE, WEST_LINE}
        assert lines[WEST_LINE][2] == OWNER  # who registered it, by email
        _shot(driver, "console-10-lines")

        # The audit log: everything, then the user events only (the filter form).
        _click(driver, "nav.admin-nav a[href='/admin/audit']")
        assert _h1(driver) == "監査ログ"
        whats = [r[2] for r in _rows(driver, "audit")]
        assert any(w.startswith("回線IDの登録") for w in whats), whats
        assert any(w.startswith("ログイン成功") for w in whats), whats
        _shot(driver, "console-11-audit")
        fill(driver, action="user.")
        submit(driver, "action")
        assert parse_qs(urlsplit(driver.current_url).query)["action"] == ["user."]
        rows = _rows(driver, "audit")
        assert driver.find_element(By.CSS_SELECTOR, "p.count").text == f"{len(rows)} 件"
        events = {(r[1], r[2], r[3]) for r in rows}
        assert {(OWNER, "利用者登録 user.invited", INVITEE),
                (OWNER, "権限変更 user.role_changed", MEMBER),
                (OWNER, "全端末ログアウト user.sessions_revoked", MEMBER)} <= events, events
        assert all(" user." in r[2] for r in rows), rows
        _shot(driver, "console-12-audit-filtered")

        # The settings menu, after its own sign-in; its 2-step and access-route pages.
        driver.get(base + "/settings/login")
        assert _h1(driver) == "認証・契約情報変更ログイン"
        _shot(driver, "console-13-settings-login")
        fill(driver, email=OWNER, password=PASSWORD)
        submit(driver, "password")
        assert page_path(driver) == "/settings", driver.title
        assert _h1(driver) == "認証・契約情報変更メニュー"
        assert driver.find_element(By.CSS_SELECTOR, "p.signed-in-as strong").text == OWNER
        items = {a.get_attribute("data-item"): a.text for a in driver.find_elements(
            By.CSS_SELECTOR, "ul.menu-items a")}
        assert items["two_step"] == "2段階認証設定"
        assert items["access_route"] == "アクセス経路設定"
        _shot(driver, "console-14-settings-menu")

        _click(driver, "a[data-item=two_step]")
        assert _h1(driver) == "2段階認証設定"
        assert driver.find_element(By.CSS_SELECTOR, "strong.two-step-state").text == "無効"
        _shot(driver, "console-15-settings-two-step")
        driver.find_element(By.CSS_SELECTOR, "input[name=two_step][value=enabled]").click()
        submit(driver, "two_step")
        assert driver.find_element(By.CSS_SELECTOR, "input[name=step]").get_attribute(
            "value") == "confirm"
        assert "2段階認証" in _h1(driver)
        _shot(driver, "console-16-settings-two-step-confirm")

        driver.get(base + "/settings/access-route")
        assert _h1(driver) == "アクセス経路設定"
        checked = driver.find_element(By.CSS_SELECTOR, "input[name=route]:checked")
        assert checked.get_attribute("value") == "line+internet"
        _shot(driver, "console-17-settings-access-route")
        driver.find_element(By.CSS_SELECTOR, "input[name=route][value=line-only]").click()
        submit(driver, "route")
        assert driver.find_element(By.CSS_SELECTOR, "strong.new-route").text == "回線認証のみ"
        _shot(driver, "console-18-settings-access-route-confirm")
