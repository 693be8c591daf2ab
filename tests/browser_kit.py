"""A real headless browser for the tests: Debian's chromium driven by its chromedriver through Selenium.

Why Debian's packages, named by path: the test machines reach package registries only, so a
browser Selenium would fetch for itself (selenium-manager downloading Chrome and a matching
driver) cannot work here. scripts/services.sh installs `chromium` and `chromium-driver`; this
module points Selenium at /usr/bin/chromium and /usr/bin/chromedriver and makes sure
selenium-manager is never asked. A missing browser is a broken setup: RuntimeError, never a skip.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator, Union
from unittest import mock

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# The flags, and why each one:
FLAGS = (
    "--headless=new",  # the real browser without a display (not the old headless shell)
    "--no-sandbox",  # the tests run as root, and Chromium refuses root with its sandbox on
    "--disable-dev-shm-usage",  # shared memory in /tmp: a container's small /dev/shm crashes tabs
    "--disable-gpu",  # no GPU here; software rendering without probing for one
    "--no-first-run",  # no first-run page or import of another browser's settings
    "--no-default-browser-check",
    "--disable-extensions",  # no extensions, whatever the profile holds
    "--disable-component-update",  # no phoning home for components (there is no internet)
    "--disable-background-networking",
    "--disable-default-apps",
    "--disable-sync",
)


def _require(path: str, package: str) -> None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"{path} is missing (Debian package {package}): "
                           "run scripts/services.sh")


def chrome_options(width: int = 1366, height: int = 900,
                   extra: tuple[str, ...] = ()) -> webdriver.ChromeOptions:
    """The options of chrome(): headless Debian chromium at this window size, console logged.

    `goog:loggingPrefs` {"browser": "ALL"} is what makes driver.get_log("browser") (and so
    severe_console_errors) return the page's console messages and uncaught exceptions.
    """
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    for flag in extra:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def _no_selenium_manager(*_args, **_kwargs):
    raise RuntimeError("selenium-manager was asked for a browser; tests/browser_kit.py must name "
                       f"{CHROMIUM} and {CHROMEDRIVER} itself (run scripts/services.sh)")


@contextmanager
def chrome(width: int = 1366, height: int = 900,
           extra: tuple[str, ...] = ()) -> Iterator[webdriver.Chrome]:
    """A headless Chromium session; the driver is always quit on exit, and with it the browser.

    Selenium is given the driver's path in its Service (and the browser's in the options), so it
    never runs selenium-manager; should a later Selenium ask it anyway, the call raises instead of
    trying to download Chrome. SE_CHROMEDRIVER, which Selenium would prefer to the path given,
    is hidden while the driver starts.
    """
    _require(CHROMIUM, "chromium")
    _require(CHROMEDRIVER, "chromium-driver")
    with ExitStack() as guards:
        guards.enter_context(mock.patch.dict(os.environ))
        os.environ.pop("SE_CHROMEDRIVER", None)
        for name in ("binary_paths", "driver_location"):  # its entry point, newer and older
            if hasattr(SeleniumManager, name):
                guards.enter_context(mock.patch.object(SeleniumManager, name, _no_selenium_manager))
        driver = webdriver.Chrome(options=chrome_options(width, height, extra),
                                  service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()  # ends the session (chromedriver closes chromium), then stops chromedriver


def severe_console_errors(driver) -> list[dict]:
    """The SEVERE entries of the browser's console log: JavaScript errors, uncaught exceptions,
    failed loads. A test asserts a page ran clean with `assert not severe_console_errors(driver)`.

    Reading the log empties it, so this returns what was logged since the previous call; with the
    session-wide `browser` fixture, call it once before loading a page to drop an earlier test's
    entries. Each entry is chromedriver's dict: level, message, source, timestamp.
    """
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


# a guard against a page that never gets there, not a speed budget (those are benchmarks'):
# a full CI run keeps both cores busy, and a page's first API calls then wait their turn
WAIT_SECONDS = 30


def wait_for(driver, predicate_or_css: Union[str, Callable], timeout: float = WAIT_SECONDS):
    """Wait up to timeout s: for a CSS selector, until its element is visible (the element is
    returned); for a callable, until predicate(driver) is truthy (its value is returned).
    Raises selenium's TimeoutException otherwise, saying what the page showed then.
    """
    wait = WebDriverWait(driver, timeout)
    if isinstance(predicate_or_css, str):
        condition = EC.visibility_of_element_located((By.CSS_SELECTOR, predicate_or_css))
        message = f"no visible element {predicate_or_css!r} after {timeout} s"
    else:
        condition, message = predicate_or_css, f"{predicate_or_css!r} not true after {timeout} s"
    try:
        return wait.until(condition, message)
    except TimeoutException as exc:
        exc.msg = f"{exc.msg}; {page_state(driver)}"
        raise


def page_state(driver, limit: int = 600) -> str:
    """What a person would see of the page (its address, visible text) and what its console
    logged: the evidence a timed-out wait reports, since the page is gone after the test."""
    try:
        url = driver.current_url
        shown = " ".join(driver.execute_script("return document.body.innerText;").split())
        logged = [f"{e.get('level')}: {e.get('message')}" for e in driver.get_log("browser")]
    except WebDriverException as exc:  # the browser itself is what failed
        return f"the page could not be read: {exc.msg}"
    return (f"page {url} shows: {shown[:limit]!r}; console: "
            + (" | ".join(logged)[-limit:] if logged else "nothing"))


def trusting(*pem_files) -> tuple[str, ...]:
    """The flag that has Chromium accept exactly the certificates of these PEM files (an MN's
    own CA-issued certificate, by its public key) — not every certificate, as
    --ignore-certificate-errors would."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pins = []
    for path in pem_files:
        for cert in x509.load_pem_x509_certificates(open(path, "rb").read()):
            spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            pins.append(base64.b64encode(hashlib.sha256(spki).digest()).decode())
    return (f"--ignore-certificate-errors-spki-list={','.join(pins)}",)
