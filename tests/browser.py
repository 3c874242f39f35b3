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
