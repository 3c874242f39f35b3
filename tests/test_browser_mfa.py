"""Page level, in a real browser: 2-step enrolment with an authenticator app (SPEC §4.3-4.5).

Headless Debian Chromium (tests/browser.py) against the provider served by granian as in
production. The secret is read as a phone would read it: the QR code is cut out of the
rendered page (a screenshot of the ``<img>``) and decoded with zxing-cpp, and the codes
typed come from the decoded ``otpauth://`` URI. Screenshots of every Japanese page land in
tests/artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import io
import re
import time
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import zxingcpp
from PIL import Image
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

EMAIL = "hanako@example.com"
BRAND = "コーデックストレージ"


def _tick(driver, name: str) -> None:
    box = driver.find_element(By.NAME, name)
    if not box.is_selected():
        box.click()


def _sign_in(driver, base: str) -> None:
    driver.get(base + "/login?next=/signed-in")
    fill(driver, email=EMAIL, password=PASSWORD)
    submit(driver, "password")


def _qr_text(png: bytes) -> str:
    """The text of the one QR code in a PNG, as a phone camera would read it."""
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L"))
    qr = [b.text for b in found if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(qr) == 1, f"QR codes found: {[(b.format, b.text) for b in found]}"
    return qr[0]


def test_an_authenticator_app_enrolled_from_the_qr_code_signs_in_and_is_asked_for_again(
        settings, factory):
    clean_artifacts("mfa-")
    factory.user(email=EMAIL, name="利用 花子", two_step=True)
    with live_provider(settings) as base, chromium(lang="ja") as driver:
        # The password, then the enrolment: SMS first, with the switch to the app.
        _sign_in(driver, base)
        assert page_path(driver) == "/mfa", driver.title
        assert "2段階認証の設定" in driver.page_source
        assert "携帯電話番号" in driver.page_source
        screenshot(driver, "mfa-01-sms-enrolment")
        next_page(driver, driver.find_element(By.CSS_SELECTOR, 'a[data-step="totp"]').click)

        # The QR code: rendered here as an SVG data URI, read off the screen.
        qr = driver.find_element(By.CSS_SELECTOR, "p.qr img")
        assert qr.get_attribute("src").startswith("data:image/svg+xml")
        screenshot(driver, "mfa-02-totp-enrolment")
        uri = _qr_text(qr.screenshot_as_png)
        printed = driver.find_element(By.CSS_SELECTOR, "code.totp-secret").text
        assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4}){7}", printed), printed
        parts = urlsplit(uri)
        assert (parts.scheme, parts.netloc) == ("otpauth", "totp"), uri
        assert unquote(parts.path) == f"/{BRAND}:{EMAIL}"
        params = parse_qs(parts.query)
        assert params["secret"] == [printed.replace(" ", "")]
        assert params["issuer"] == [BRAND]
        app = pyotp.parse_uri(uri)  # what an authenticator app makes of the QR code
        assert (app.digits, app.interval, app.issuer) == (6, 30, BRAND)

        # The code the app shows now; remember this browser.
        enrolled_step = int(time.time()) // app.interval
        fill(driver, code=app.generate_otp(enrolled_step))
        _tick(driver, "remember")
        submit(driver, "code")
        recovery = driver.find_element(By.CSS_SELECTOR, "code.recovery-code").text
        assert len(recovery.replace("-", "")) == 20, recovery
        screenshot(driver, "mfa-03-recovery-code")
        _tick(driver, "saved")
        submit(driver, "saved")
        assert "2段階認証完了" in driver.page_source
        screenshot(driver, "mfa-04-done")
        submit(driver, "flow")
        assert page_path(driver) == "/signed-in", driver.title
        assert "ログインしました" in driver.page_source
        assert EMAIL in driver.page_source
        screenshot(driver, "mfa-05-signed-in")
        remembered = driver.get_cookie("idp_mfa")
        assert remembered is not None and remembered["httpOnly"]

        # Sign out with the page's button; the browser keeps its other cookies.
        next_page(driver, driver.find_element(
            By.CSS_SELECTOR, "form[action='/logout'] button[type=submit]").click)
        assert "ログアウトしました" in driver.page_source
        assert driver.get_cookie("idp_session") is None
        screenshot(driver, "mfa-06-signed-out")

        # The same browser again: remembered, so the password alone signs in.
        _sign_in(driver, base)
        assert page_path(driver) == "/signed-in", driver.title
        assert "ログインしました" in driver.page_source
        screenshot(driver, "mfa-07-remembered")

        # A browser with no cookies (another computer): the app's code is asked for.
        driver.delete_all_cookies()
        _sign_in(driver, base)
        assert page_path(driver) == "/mfa", driver.title
        assert "2段階認証" in driver.page_source
        assert "2段階認証の設定" not in driver.page_source
        assert driver.find_elements(By.CSS_SELECTOR, 'a[data-step="recovery"]')
        screenshot(driver, "mfa-08-totp-code")
        # The code that enrolled the app is refused: a time step is good for one sign-in.
        fill(driver, code=app.generate_otp(enrolled_step))
        submit(driver, "code")
        assert page_path(driver) == "/mfa"
        assert "認証コードが正しくありません。" in driver.page_source
        screenshot(driver, "mfa-09-code-replayed")
        # A fresh code: the current step's, or, while still in the enrolment's step, the
        # next one's (as an app whose clock runs up to 30 s ahead would show; the provider
        # accepts one step either side), so the test never waits for the clock.
        step = max(int(time.time()) // app.interval, enrolled_step + 1)
        fill(driver, code=app.generate_otp(step))
        submit(driver, "code")
        assert page_path(driver) == "/signed-in", driver.title
        assert "ログインしました" in driver.page_source
        screenshot(driver, "mfa-10-signed-in-with-code")
