"""Page level, in a real browser: invitation -> registration -> sign-in, in Japanese.

Headless Debian Chromium (tests/browser.py) against the provider served by granian as in
production; the invitation mail is read from the real SMTP server. Screenshots of every
Japanese page land in tests/artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.browser import chromium, clean_artifacts, fill, screenshot, submit
from tests.helpers import PASSWORD
from tests.live import live_provider

NEW_PASSWORD = "Sakura-Blossom-2026"


def test_an_invited_user_registers_and_signs_in_in_a_japanese_browser(
        settings, factory, mailbox):
    clean_artifacts("invitation-")
    factory.user(email="owner@example.com", name="契約 太郎")
    with live_provider(settings) as base, chromium(lang="ja") as driver:
        # The owner signs in and lands on the console's invitation form.
        driver.get(base + "/login?next=/admin/users/invite")
        assert "ログイン" in driver.title
        screenshot(driver, "invitation-01-owner-login")
        fill(driver, email="owner@example.com", password=PASSWORD)
        submit(driver, "password")
        assert urlsplit(driver.current_url).path == "/admin/users/invite", driver.title
        fill(driver, name="利用 花子", email="hanako@example.com")
        screenshot(driver, "invitation-02-invite-form")
        submit(driver, "email")
        assert "hanako@example.com" in driver.page_source
        screenshot(driver, "invitation-03-invited")

        # The invitee opens the link from the mail in a browser of their own.
        mail = mailbox.last("hanako@example.com")
        assert mail.subject == "【コーデックストレージ】利用者登録のご案内"
        assert "owner@example.com" in mail.body
        driver.delete_all_cookies()
        driver.get(base + mail.link)
        assert "hanako@example.com" in driver.page_source
        assert "英大文字、英小文字、数字、記号から3種類以上" in driver.page_source
        screenshot(driver, "invitation-04-registration")
        fill(driver, password=NEW_PASSWORD, password_confirmation=NEW_PASSWORD)
        submit(driver, "password")
        screenshot(driver, "invitation-05-confirmation")
        submit(driver, "nonce")
        screenshot(driver, "invitation-06-registered")

        # ... and signs in with the address and the password just chosen.
        driver.get(base + "/login")
        fill(driver, email="hanako@example.com", password=NEW_PASSWORD)
        screenshot(driver, "invitation-07-login")
        submit(driver, "password")
        assert "hanako@example.com" in driver.page_source
        assert "ログインしました" in driver.page_source
        screenshot(driver, "invitation-08-signed-in")
