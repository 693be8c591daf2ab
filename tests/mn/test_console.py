"""The web console in a real browser (Debian's headless Chromium): signing in and out, every
page with the data of a seeded cloud, search and paging, settings (VM HA) seen by the API,
VM actions behind a confirmation, and the API's errors shown as what / why / next."""

from __future__ import annotations

import time

import httpx
import pytest
import sqlalchemy as sa
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from browser_kit import severe_console_errors, wait_for
from console_kit import (bars, caption_total, click, column, go, open_console, script_errors,
                         sign_in, text)
from mn_kit import db_url, running_mn, seeded_sqlite

from skylift.agent.launch import free_port
from skylift.mn.launch import start_mn, stop_mn

HOSTS, VMS = 20, 120  # more VMs than one page of 50


def wait_until(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def type_into(driver, field_id: str, value: str) -> None:
    """Replace a field's text and press Enter; again if the page re-rendered it meanwhile."""
    for _ in range(50):
        try:
            field = driver.find_element(By.ID, field_id)
            field.clear()
            field.send_keys(value, Keys.ENTER)
            return
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError(f"#{field_id} never stayed long enough to type into")


def connected(client: httpx.Client, uuid: str) -> bool:
    return client.get(f"/v1/hosts/{uuid}/connection").json()["status"] == "Connected"


@pytest.fixture(scope="module")
def cloud_db(tmp_path_factory):
    """A seeded 4.3.12 cloud (its hosts have no agents: they show Disconnected)."""
    return seeded_sqlite(tmp_path_factory.mktemp("console-db"), "4.3.12", hosts=HOSTS, vms=VMS)


@pytest.fixture(scope="module")
def cloud(cloud_db, tmp_path_factory):
    """An MN on that cloud."""
    with running_mn(cloud_db, tmp_path_factory.mktemp("console-home")) as mn:
        yield mn, mn.client()


@pytest.fixture
def page(browser, cloud):
    """The console signed in as the admin."""
    mn, _ = cloud
    open_console(browser, mn.url)
    sign_in(browser, mn.token())
    wait_for(browser, "#overview section")
    return browser


def test_a_wrong_token_is_refused_with_what_why_next_and_nothing_is_kept(browser, cloud):
    mn, _ = cloud
    open_console(browser, mn.url)
    browser.switch_to.active_element.send_keys("not-a-token", Keys.ENTER)
    error = wait_for(browser, "#sign-in-error .error")
    assert error.find_element(By.CSS_SELECTOR, ".what").text  # the MN's words, not a code
    assert error.find_element(By.CSS_SELECTOR, ".next").text.startswith("Next:")
    assert browser.execute_script("return sessionStorage.getItem('skylift-token')") is None
    assert not browser.find_element(By.ID, "nav").is_displayed()
    assert not script_errors(browser)


def test_sign_in_shows_the_overview_and_sign_out_forgets_the_token(browser, cloud):
    mn, client = cloud
    open_console(browser, mn.url)
    sign_in(browser, mn.token())
    wait_for(browser, "#overview #hosts-by-status")
    assert browser.find_element(By.ID, "who").text == "admin"
    assert "release 4.3.12" in browser.find_element(By.ID, "release").text
    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, "#token")
    assert browser.execute_script("return sessionStorage.getItem('skylift-token')") is None
    assert not browser.find_element(By.ID, "nav").is_displayed()
    assert not script_errors(browser)


def test_a_reload_while_the_mn_does_not_answer_waits_for_it_and_keeps_the_header(page, cloud):
    """A page reloaded while its MN is away (between two releases) asks again until it answers,
    saying why it waits; it does not show a page without its header's links."""
    page.execute_cdp_cmd("Network.enable", {})
    try:
        # the browser refuses the request, as when nothing listens on the MN's port
        page.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/v1/session"]})
        page.refresh()
        waiting = wait_for(page, "#session-wait .error")
        assert "does not answer" in waiting.find_element(By.CSS_SELECTOR, ".what").text
        assert not page.find_element(By.ID, "nav").is_displayed()
        assert page.execute_script("return sessionStorage.getItem('skylift-token')")  # kept
        page.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        wait_for(page, "#overview section")
        assert page.find_element(By.ID, "nav").is_displayed()
        assert page.find_element(By.ID, "who").text == "admin"
    finally:
        page.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        page.execute_cdp_cmd("Network.disable", {})
    assert not script_errors(page)


def test_a_console_whose_token_is_gone_asks_the_mn_nothing_and_shows_sign_in(page, cloud):
    """The MN counts calls without credentials against the caller's address (429 after ten a
    minute): a console left without its token stops polling instead of locking its users out."""
    severe_console_errors(page)  # forget what signing in logged
    page.execute_script("sessionStorage.clear();")
    error = wait_for(page, "#sign-in-error .error")  # the overview's next refresh noticed
    assert "signed out" in error.find_element(By.CSS_SELECTOR, ".what").text
    page.switch_to.active_element.send_keys("half-typed")
    time.sleep(5.5)  # the overview refreshes every 5 s: a page still polling would show here
    refused = [e for e in severe_console_errors(page) if " 401 " in e["message"]]
    assert refused == []  # not one call reached the MN without a token
    assert page.find_element(By.ID, "token").get_attribute("value") == "half-typed"
    assert not page.find_element(By.ID, "nav").is_displayed()


def test_the_overview_shows_what_the_api_counts(page, cloud):
    mn, client = cloud
    api = client.get("/v1/overview").json()
    wait_for(page, "#agents-by-version dd")
    assert bars(page, "hosts-by-status") == api["hosts_by_status"]
    assert bars(page, "vms-by-state") == api["vms_by_state"]
    assert bars(page, "agents-by-version") == api["agents_by_version"]
    assert sum(bars(page, "vms-by-state").values()) == VMS
    me = text(page, "#management-nodes")
    assert f"{mn.pid}" in me and "(this one)" in me
    assert not script_errors(page)


def test_lists_page_and_search(page, cloud):
    mn, client = cloud
    go(page, "vms", "#list-vm_instances table")
    assert caption_total(page, "list-vm_instances") == VMS
    first = column(page, "#list-vm_instances", 0)
    assert len(first) == 50
    assert text(page, "#list-vm_instances .range") == f"1–50 of {VMS}"
    page.find_element(By.XPATH, "//button[normalize-space()='Next ›']").click()
    wait_for(page, lambda d: text(d, "#list-vm_instances .range") == f"51–100 of {VMS}")
    second = column(page, "#list-vm_instances", 0)
    assert len(second) == 50 and not set(first) & set(second)
    # search by part of a name: the page shows exactly what the API finds
    search = page.find_element(By.ID, "list-vm_instances-q")
    search.send_keys("vm-1")
    expected = client.get("/v1/vm_instances", params={"q": "vm-1", "limit": 50}).json()
    wait_for(page, lambda d: caption_total(d, "list-vm_instances") == expected["total"])
    assert sorted(column(page, "#list-vm_instances", 0)) == \
        sorted(v["name"] for v in expected["items"])
    assert all("vm-1" in name for name in column(page, "#list-vm_instances", 0))
    assert not script_errors(page)


@pytest.mark.parametrize("route,list_id,kind", [
    ("hosts", "list-hosts", "hosts"), ("volumes", "list-volumes", "volumes"),
    ("networks", "list-l3_networks", "l3_networks"),
    ("networks", "list-vpc_vrouters", "vpc_vrouters"), ("accounts", "list-accounts", "accounts")])
def test_every_list_page_shows_the_cloud(page, cloud, route, list_id, kind):
    mn, client = cloud
    go(page, route, f"#{list_id} table")
    total = client.get(f"/v1/{kind}", params={"limit": 1}).json()["total"]
    assert total > 0
    assert caption_total(page, list_id) == total
    names = {r["name"] for r in client.get(f"/v1/{kind}", params={"limit": 50}).json()["items"]}
    assert set(column(page, f"#{list_id}", 0)) == names
    assert not script_errors(page)


def test_vm_ha_switched_in_settings_is_what_the_api_says(page, cloud):
    mn, client = cloud
    go(page, "settings", "#ha-enable")
    box = page.find_element(By.ID, "ha-enable")
    before = client.get("/v1/ha").json()["enabled"]
    assert box.is_selected() == before
    box.send_keys(Keys.SPACE)  # the keyboard toggles a switch
    wait_for(page, lambda d: client.get("/v1/ha").json()["enabled"] is (not before))
    notice = wait_for(page, "#notice")
    assert f"ha.enable is now {str(not before).lower()}" in notice.text
    page.find_element(By.ID, "ha-enable").click()
    wait_for(page, lambda d: client.get("/v1/ha").json()["enabled"] is before)
    # a bad value is refused with the MN's words and changes nothing; a good one is kept
    type_into(page, "set-host-pingInterval", "soon")
    error = wait_for(page, "#settings .error")
    assert "host.pingInterval" in error.text or "pingInterval" in error.text
    assert client.get("/v1/global-settings/host/pingInterval").json()["value"] == "60"
    type_into(page, "set-host-pingInterval", "30")
    wait_for(page, lambda d: client.get("/v1/global-settings/host/pingInterval").json()
             ["value"] == "30")
    client.put("/v1/global-settings/host/pingInterval", json={"value": 60})
    # every setting is listed with its meaning
    rows = client.get("/v1/global-settings").json()["settings"]
    shown = column(page, "#settings", 0)
    assert shown == [f"{s['category']}.{s['name']}" for s in rows]
    assert all(column(page, "#settings", 3))
    assert not script_errors(page)


def test_a_refused_vm_action_shows_the_apis_what_why_next_and_cancel_does_nothing(page, cloud):
    mn, client = cloud
    go(page, "vms", "#list-vm_instances table")
    page.find_element(By.ID, "list-vm_instances-q").send_keys("Running")
    wait_for(page, lambda d: caption_total(d, "list-vm_instances") < VMS)
    name = column(page, "#list-vm_instances", 0)[0]
    vm = client.get("/v1/vm_instances", params={"q": name}).json()["items"]
    vm = next(v for v in vm if v["name"] == name)
    click(page, f"button[aria-label='Stop {name}']")
    dialog = wait_for(page, "#confirm")
    assert name in dialog.text
    dialog.find_element(By.XPATH, ".//button[normalize-space()='Cancel']").click()
    wait_for(page, lambda d: not d.find_element(By.ID, "confirm").is_displayed())
    assert client.get(f"/v1/vm_instances/{vm['uuid']}").json()["state"] == "Running"
    # confirmed: the MN refuses (its host has no agent) and the page says what, why, next
    click(page, f"button[aria-label='Stop {name}']")
    wait_for(page, "#confirm").find_element(By.ID, "confirm-ok").click()
    error = wait_for(page, "#view > .error")
    refused = client.post(f"/v1/vm_instances/{vm['uuid']}/stop").json()
    assert error.find_element(By.CSS_SELECTOR, ".what").text == refused["what"]
    assert refused["why"] in error.find_element(By.CSS_SELECTOR, ".why").text
    assert refused["next"] in error.find_element(By.CSS_SELECTOR, ".next").text
    assert client.get(f"/v1/vm_instances/{vm['uuid']}").json()["state"] == "Running"


def test_vm_migrate_stop_and_start_from_the_console_reach_the_hypervisor(browser, mn_cloud,
                                                                          tmp_path):
    cloud = mn_cloud(hosts=2, vms=2)
    mn = start_mn(db_url(cloud.db), port=free_port(), agent_port=cloud.port,
                  env={"SKYLIFT_HOME": str(tmp_path / "home")})
    try:
        client = mn.client(timeout=30)
        host = cloud.hosts[0].uuid
        wait_until(lambda: connected(client, host), what="the host connected")
        vm = cloud.vms[0]
        open_console(browser, mn.url)
        sign_in(browser, mn.token())
        go(browser, "vms", "#list-vm_instances table")
        # migrate: the dialog offers the other connected host of its cluster
        target = next(n for n in cloud.hosts if n.uuid != vm["host_uuid"])
        for h in cloud.hosts:
            wait_until(lambda h=h: connected(client, h.uuid), what=f"{h.name} connected")
        click(browser, f"button[aria-label='Migrate {vm['name']}']")
        dialog = wait_for(browser, "#confirm")
        options = [o.get_attribute("value")
                   for o in dialog.find_elements(By.CSS_SELECTOR, "#migrate-to option")]
        assert options == [target.uuid]
        dialog.find_element(By.ID, "confirm-ok").click()
        wait_for(browser, lambda d: f"{vm['name']} migrated" in text(d, "#notice"), timeout=20)
        assert client.get(f"/v1/vm_instances/{vm['uuid']}").json()["host_uuid"] == target.uuid
        with cloud.client(target.uuid) as agent:
            assert vm["uuid"] in {v["uuid"] for v in agent.list_vms()}
        host = target.uuid
        for label, state in (("Stop", "Stopped"), ("Start", "Running")):
            click(browser, f"button[aria-label='{label} {vm['name']}']")
            wait_for(browser, "#confirm").find_element(By.ID, "confirm-ok").click()
            wait_for(browser, lambda d: f"{vm['name']}: {label.lower()} done"
                     in d.find_element(By.ID, "notice").text, timeout=20)
            assert client.get(f"/v1/vm_instances/{vm['uuid']}").json()["state"] == state
            with cloud.client(host) as agent:  # the hypervisor agrees, not only the database
                on_host = next(v for v in agent.list_vms() if v["uuid"] == vm["uuid"])
            assert on_host["state"] == state
        assert not script_errors(browser)
    finally:
        stop_mn(mn)


def test_an_account_sees_only_its_vms_and_volumes(browser, cloud, cloud_db):
    mn, client = cloud
    account = next(a for a in client.get("/v1/accounts").json()["items"]
                   if a["type"] != "SystemAdmin")
    vms = client.get("/v1/vm_instances", params={"limit": 3}).json()["items"]
    engine = cloud_db.engine()
    with engine.begin() as conn:  # the account owns three VMs (every VM was the admin's)
        for vm in vms:
            conn.execute(sa.text("UPDATE account_resource_refs SET account_uuid = :a "
                                 "WHERE resource_type = 'vm_instances' AND resource_uuid = :u"),
                         {"a": account["uuid"], "u": vm["uuid"]})
    engine.dispose()
    token = client.post(f"/v1/accounts/{account['uuid']}/tokens", json={}).json()["token"]
    open_console(browser, mn.url)
    sign_in(browser, token)
    wait_for(browser, "#list-vm_instances table")  # an account starts on its VMs
    assert text(browser, "#who") == f"account {account['uuid'][:8]}"
    shown = browser.execute_script(
        "return [...document.querySelectorAll('#nav a')].filter((a) => a.offsetParent)"
        ".map((a) => a.textContent);")
    assert shown == ["VMs", "Volumes"]
    assert caption_total(browser, "list-vm_instances") == 3
    assert sorted(column(browser, "#list-vm_instances", 0)) == sorted(v["name"] for v in vms)
    browser.get(mn.url + "/#/hosts")  # a page of the admin's: back to its own VMs
    wait_for(browser, "#list-vm_instances table")
    assert not script_errors(browser)


def test_the_upgrade_page_says_when_no_upgrade_ran(page, cloud):
    go(page, "upgrade", "#upgrade-none")
    assert "skylift upgrade run" in page.find_element(By.ID, "upgrade-none").text
    assert not script_errors(page)


ACCESSIBLE_NAMES = """
const unnamed = [];
for (const el of document.querySelectorAll("main input, main select, main button, main a")) {
  const labelled = el.id && document.querySelector(`label[for="${el.id}"]`);
  const name = el.getAttribute("aria-label") || (labelled && labelled.textContent.trim())
    || (el.tagName !== "INPUT" && el.textContent.trim());
  if (!name) unnamed.push(el.outerHTML.slice(0, 120));
}
return unnamed;
"""


@pytest.mark.parametrize("route,ready", [
    ("overview", "#agents-by-version"), ("hosts", "#list-hosts table"),
    ("vms", "#list-vm_instances table"), ("volumes", "#list-volumes table"),
    ("networks", "#list-vpc_vrouters table"), ("accounts", "#list-accounts table"),
    ("settings", "#settings table"), ("upgrade", "#upgrade-none")])
def test_every_control_of_every_page_has_a_name_a_screen_reader_can_say(page, route, ready):
    if route == "overview":  # where signing in lands: come back to it from another page
        go(page, "upgrade", "#upgrade-none")
    go(page, route, ready)
    assert page.execute_script(ACCESSIBLE_NAMES) == []
    assert page.execute_script("return document.activeElement.id") == "view"  # focus moved
    assert not script_errors(page)


def test_pages_are_reached_by_keyboard_alone(page, cloud):
    from selenium.webdriver.common.action_chains import ActionChains

    page.find_element(By.CSS_SELECTOR, "#nav a[href='#/hosts']").send_keys(Keys.ENTER)
    wait_for(page, "#list-hosts table")
    ActionChains(page).send_keys(Keys.TAB).perform()  # from the page's heading onwards
    focused = page.switch_to.active_element
    assert focused.tag_name in ("input", "button", "a")
    assert page.find_element(By.CSS_SELECTOR, "label[for='list-hosts-q']").text == "Search hosts"
    # "Skip to content" moves the focus to the page and leaves the page where it is
    page.find_element(By.CSS_SELECTOR, "a.skip").send_keys(Keys.ENTER)
    assert page.execute_script("return [document.activeElement.id, location.hash]") == \
        ["view", "#/hosts"]
    assert text(page, "#view h1") == "Hosts"


def test_a_page_of_an_unknown_route_falls_back_to_the_overview(page, cloud):
    mn, _ = cloud
    page.get(mn.url + "/#/nowhere")
    wait_for(page, "#overview section")
    assert httpx.get(mn.url + "/v1/console/assets").status_code == 200
