"""A console page left open across a whole lab upgrade, in headless Chromium: it follows the
run live (steps, the API's maintenance window), moves itself onto the new release's assets
with no reload by hand, and ends on the run's proof — the figures the run measured."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from browser_kit import wait_for
from console_kit import bars, caption_total, column, go, open_console, script_errors, sign_in, text
from selenium.webdriver.common.by import By
from skylift.lineage import NEWEST, RELEASES, version_key
from skylift.upgrade.single_mn import build_plan
from upgrade_world import World

LISTS = [("hosts", "list-hosts", "hosts"), ("vms", "list-vm_instances", "vm_instances"),
         ("volumes", "list-volumes", "volumes"), ("networks", "list-l3_networks", "l3_networks"),
         ("networks", "list-vpc_vrouters", "vpc_vrouters"), ("accounts", "list-accounts", "accounts")]
LOADED_APP_JS = "return document.querySelector(\"script[src^='/static/app.']\").getAttribute('src')"
HOW_LOADED = "return performance.getEntriesByType('navigation')[0].type"


@pytest.fixture
def world():
    w = World("conup")
    yield w
    from skylift.lab.installation import down

    down(w.state["name"])


def test_a_console_left_open_follows_the_upgrade_and_moves_onto_the_new_assets(browser, world):
    url = world.state["mn"]["url"]
    open_console(browser, url)
    sign_in(browser, Path(world.state["mn"]["token_file"]).read_text().strip())
    go(browser, "upgrade", "#upgrade-none")
    before = httpx.get(f"{url}/v1/console/assets").json()
    assert browser.execute_script(LOADED_APP_JS) == before["assets"]["app.js"]

    upgrade = world.popen_upgrade()
    steps_seen, window_seen_open = [], False
    deadline = time.monotonic() + 600
    while upgrade.poll() is None and time.monotonic() < deadline:
        now = text(browser, "#upgrade-now")
        if now and (not steps_seen or steps_seen[-1] != now):
            steps_seen.append(now)
        window_seen_open |= "so far" in (text(browser, "#upgrade-window") or "")
        time.sleep(0.2)
    assert upgrade.wait(timeout=5) == 0

    # the page moved itself onto the new release's assets: nobody reloaded it
    after = httpx.get(f"{url}/v1/console/assets").json()
    assert after["release"] == NEWEST.version and after["assets"] != before["assets"]
    wait_for(browser, lambda d: d.execute_script(LOADED_APP_JS) == after["assets"]["app.js"],
             timeout=30)
    assert browser.execute_script(HOW_LOADED) == "reload"  # by the page itself, not driver.get
    notice = wait_for(browser, "#notice")
    assert notice.get_attribute("data-updated-to") == NEWEST.version
    assert f"release {NEWEST.version} (from {before['release']})" in notice.text
    # and what changed since the release it was loaded with, from the lineage's notes
    notes = browser.execute_script(
        "return [...document.querySelectorAll('#release-notes li')].map((li) => li.textContent);")
    assert notes == [f"{r.version}: {'; '.join(r.notes)}" for r in RELEASES
                     if version_key(r.version) > version_key(before["release"])]
    assert len(notes) >= 2

    # it followed the run live: several steps in flight one after another, the window open
    plan = [ps.key for ps in build_plan(False).steps()]
    assert len(steps_seen) >= 3 and all(s in plan for s in steps_seen)  # it polls each second
    assert [plan.index(s) for s in steps_seen] == sorted(plan.index(s) for s in steps_seen)
    assert window_seen_open

    # and it ends on the run's own figures: status, every step done, the window, the proof
    wait_for(browser, lambda d: text(d, "#upgrade-status") == "ok", timeout=15)
    assert f"{len(plan)} of {len(plan)} steps done" in text(browser, "#upgrade-run")
    run_dir = world.mn_home / "upgrade" / "current"
    report = json.loads((run_dir / "report.json").read_text())
    measured = {row["measure"]: row["value"] for s in report["sections"]
                if s["title"] == "Availability" for row in s["table"]}
    window = measured["MN API in maintenance (drain to new MN up), s"]
    shown_window = re.match(r"API was in maintenance for ([0-9.]+) s",
                            text(browser, "#upgrade-window"))
    assert shown_window and abs(float(shown_window.group(1)) - window) <= 0.01
    proof = json.loads((run_dir / "state.json").read_text())["proof"]
    shown = text(browser, "#upgrade-proof")
    assert proof["ok"] and "every recorded resource still there" in shown
    assert f"VMs checked (boot ids){proof['vms_checked']}, restarted 0, missing 0" in shown
    assert proof["vms_checked"] == len(world.state["vms"])
    agents = proof["agents_checked"]
    assert f"Agents on the new version{agents} of {agents}" in shown
    assert text(browser, "#upgrade-report caption")  # the report's tables, as a page
    # the rollout's chart: every agent of the lab's hosts and vRouters on the new release
    rolled = [n for n in world.state["nodes"] if n["kind"] in ("host", "vrouter")]
    wait_for(browser, lambda d: bars(d, "upgrade-agents") == {NEWEST.version: len(rolled)})
    # the preflight's findings, each with its severity and remedy (from 3.7.1 it always has
    # some: what moves to Enterprise Management, how VM HA is handled)
    findings = json.loads((run_dir / "state.json").read_text())["checks"]["findings"]
    assert findings
    shown = browser.execute_script(
        "return [...document.querySelectorAll('#upgrade-findings li')].map((li) => ["
        "li.querySelector('.sev').textContent, li.querySelector('b').textContent,"
        "(li.querySelector('.remedy') || {textContent: ''}).textContent]);")
    assert shown == [[f["severity"], f["title"],
                      f"Remedy: {f['remediation']}" if f["remediation"] else ""]
                     for f in findings]
    assert not script_errors(browser)

    # every page of the upgraded lab cloud shows what its API says
    token = Path(world.state["mn"]["token_file"]).read_text().strip()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        go(browser, "overview", "#agents-by-version dd", timeout=20)
        overview = api.get("/v1/overview").json()
        # the rollout is over: every host's and vRouter's agent on the new release, and Connected
        agents = wait_for(browser, lambda d: (lambda b: b if b == overview["agents_by_version"]
                                              else None)(bars(d, "agents-by-version")))
        assert list(agents) == [NEWEST.version]
        hosts = [n for n in world.state["nodes"] if n["kind"] == "host"]
        assert bars(browser, "hosts-by-status") == {"Connected": len(hosts)}
        for route, list_id, kind in LISTS:
            go(browser, route, f"#{list_id} table")
            listed = api.get(f"/v1/{kind}", params={"limit": 50}).json()
            assert caption_total(browser, list_id) == listed["total"] > 0, kind
            assert sorted(column(browser, f"#{list_id}", 0)) == \
                sorted(r["name"] for r in listed["items"]), kind
        go(browser, "settings", "#ha-enable")
        assert browser.find_element(By.ID, "ha-enable").is_selected() == \
            api.get("/v1/ha").json()["enabled"] is True  # put back as it was: on
    assert not script_errors(browser)
