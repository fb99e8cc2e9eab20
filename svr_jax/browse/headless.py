"""Headless Chromium (the system's ``chromium`` + ``chromedriver``, never a downloaded browser) driven by
Selenium: used by the browser's tests, its load-time benchmark and the documentation screenshot.

Selenium is a dev dependency; ``find_chromium`` says why a browser cannot be had instead of raising.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--allow-file-access-from-files")


def find_chromium() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or the reason they cannot be used."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    browser = os.environ.get("SVR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("SVR_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        return "chromium / chromedriver not found (Debian: apt-get install chromium chromium-driver; `make setup` does it as root)"
    return browser, driver


@contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A Selenium Chrome driver on the system Chromium, with a fresh profile; browser console logs kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_chromium()
    if isinstance(found, str):
        raise RuntimeError(found)
    browser, driver_path = found
    profile = tempfile.mkdtemp(prefix="svr-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def file_url(path: Path) -> str:
    return Path(path).resolve().as_uri()


def console_errors(driver) -> list[str]:
    """Browser console entries at SEVERE level since the last call (script errors, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
