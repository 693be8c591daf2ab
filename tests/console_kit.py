"""The console as a person drives it, for the browser tests: open it, sign in, go to a page,
read what a table or a card shows."""

from __future__ import annotations

import time

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_kit import WAIT_SECONDS, severe_console_errors, wait_for


def open_console(driver, url: str) -> None:
    """A fresh console at url: signed out, nothing left of an earlier test in this tab."""
    # storage is per origin: clear it on a page of the MN that runs no console (a new
    # document, so nothing of the last page still runs), so no page of an earlier test starts
    # polling with its token and is then left without one
    driver.get(url + "/v1/version")
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    driver.get(url + "/#/overview")
    severe_console_errors(driver)  # drop what an earlier test left in the log
    wait_for(driver, "#token")


def sign_in(driver, token: str) -> None:
    """Type the token and press Enter, as a keyboard user does (the field has the focus)."""
    field = driver.switch_to.active_element
    assert field.get_attribute("id") == "token", "the sign-in field has the focus on load"
    field.send_keys(token, Keys.ENTER)
    wait_for(driver, "#nav")


def go(driver, page: str, ready_css: str, timeout: float = WAIT_SECONDS) -> None:
    """Follow the header's link to a page and wait for what it shows when loaded."""
    driver.find_element(By.CSS_SELECTOR, f"#nav a[href='#/{page}']").click()
    wait_for(driver, ready_css, timeout)


# Read in one script each: the pages re-render as they refresh, so an element found a moment
# before may be gone (stale) when it is read.

def caption_total(driver, list_id: str) -> int | None:
    """The total a list's caption states ("Hosts: 1,234"); None while it is not shown."""
    caption = driver.execute_script(
        "const c = document.querySelector(arguments[0]); return c ? c.textContent : null;",
        f"#{list_id} caption")
    return int(caption.rsplit(":", 1)[1].strip().replace(",", "")) if caption else None


def column(driver, table_css: str, index: int) -> list[str]:
    """The cells of one column (0-based) of a table's body."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
        ".map((tr) => tr.children[arguments[1]].textContent.trim());", table_css, index)


def text(driver, css: str) -> str | None:
    """The text of the element css finds, or None."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css)


def bars(driver, card_id: str) -> dict[str, int]:
    """A bar chart's figures as {label: count}."""
    pairs = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' dt')].map((dt) =>"
        " [dt.textContent, dt.nextElementSibling.querySelector('.n').textContent]);",
        f"#{card_id}")
    return {label: int(n.replace(",", "")) for label, n in pairs}


def click(driver, css: str, timeout: float = WAIT_SECONDS) -> None:
    """Click what css finds; again if the page re-rendered it between finding and clicking."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except (StaleElementReferenceException, NoSuchElementException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def script_errors(driver) -> list[dict]:
    """JavaScript errors in the console (a failed fetch while an MN restarts is not one)."""
    return [e for e in severe_console_errors(driver) if e.get("source") != "network"]
