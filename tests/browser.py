"""Headless Debian Chromium through its own ChromeDriver: no browser is downloaded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _missing(what: str) -> None:
    message = f"{what} is not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def chromium(*, lang: str = "ja") -> Iterator:
    """A headless Chromium that prefers ``lang``, like a browser set up in Japanese."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        _missing("Chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--lang={lang}", "--window-size=1000,1100"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    # An explicit driver path keeps Selenium Manager from fetching anything.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str) -> Path:
    """Save the page under tests/artifacts/ (git-ignored) for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def clean_artifacts(prefix: str) -> None:
    """Drop the previous run's screenshots of one test, so none is mistaken as current."""
    ARTIFACTS.mkdir(exist_ok=True)
    for path in ARTIFACTS.glob(prefix + "*.png"):
        path.unlink()


# -- acting like a person (shared by the page-level tests) --------------------------------


def page_path(driver) -> str:
    from urllib.parse import urlsplit

    return urlsplit(driver.current_url).path


def fill(driver, **fields: str) -> None:
    """Type ``fields`` (by input name) into the page, replacing what is there."""
    from selenium.webdriver.common.by import By

    for name, value in fields.items():
        box = driver.find_element(By.NAME, name)
        box.clear()
        box.send_keys(value)


def next_page(driver, act) -> None:
    """Do ``act`` (a click) and wait for the page it loads."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    # click() returns before the next page has loaded: mark this page's window, and wait
    # for a loaded document without the mark (a new page has a new window object).
    driver.execute_script("window.__submitted = true")
    act()
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.__submitted === undefined && document.readyState === 'complete'"))


def submit(driver, field: str) -> None:
    """Press the submit button of the form holding ``field``, as a person would."""
    from selenium.webdriver.common.by import By

    form = driver.find_element(By.NAME, field).find_element(By.XPATH, "./ancestor::form")
    next_page(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]").click)
