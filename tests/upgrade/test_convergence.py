"""Fleet convergence: hosts cut off (packets dropped) while the new MN reconnects the fleet.

Hosts that come back are finished by the MN's retries, not by its next ping round; hosts that
never come back are listed with their reason, and the operator can finish without them.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time

import httpx
import pytest

from skylift.agent.hypervisor import probe
from skylift.engine.journal import Journal
from skylift.lab import cutoff
from skylift.lineage import NEWEST
from skylift.upgrade import single_mn
from upgrade_world import World

_names = itertools.count()
HOSTS, CUT = 20, 4  # a fifth of the hosts cut off
STEP_NEW_MN = "management-node/start-new-mn"
STEP_RECONNECT = "reconnect/reconnect-agents"


@pytest.fixture
def farm_world():
    name = f"cv{os.getpid() % 1000}x{next(_names)}"
    w = World(name, hosts=HOSTS, vms=40, driver="sim", farm=True)
    try:
        yield w
    finally:
        from skylift.lab.installation import down

        down(name)
        assert cutoff.cut_addresses(name) == set()


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_state(world) -> dict:
    path = single_mn.run_dir(world.mn_home) / "state.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def step_done_at(world, key: str) -> float | None:
    journal = Journal.open(single_mn.journal_path(world.mn_home))
    try:
        return next((r["ts"] for r in journal.run_records()
                     if r.get("type") == "step_done" and r.get("step") == key), None)
    finally:
        journal.close()


def cut_when_the_new_mn_starts(world, addresses: list[str]) -> threading.Thread:
    """Cut the hosts off the moment the upgrade starts the new MN (before its storm)."""
    def watch() -> None:
        wait_until(lambda: world.in_flight() == STEP_NEW_MN, 300, "the new MN starting")
        cutoff.cut_off(world.state["name"], addresses)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def pending_by_reason(world) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for item in run_state(world).get("pending") or []:
        out.setdefault(item["reason"], set()).add(item["address"])
    return out


def boot_ids_kept(world, skip: set[str] = frozenset()) -> bool:
    return all(probe(ep) == boot for ep, boot in world.vms.values()
               if not any(f"/{address}#" in ep for address in skip))


def test_hosts_that_come_back_are_finished_by_retries_not_the_ping_round(farm_world):
    world = farm_world
    cut = cutoff.pick_hosts(world.state["name"], count=CUT)
    watcher = cut_when_the_new_mn_starts(world, cut)
    upgrade = world.popen_upgrade(*world.upgrade_argv(), "--stall-timeout", "120")
    try:
        watcher.join(300)
        # the MN reports them pending for the reason they are: they do not answer in time
        wait_until(lambda: pending_by_reason(world).get("timeout") == set(cut), 120,
                   "the cut-off hosts reported pending (timeout)")
        assert world.in_flight() == STEP_RECONNECT
        restored = time.time()
        cutoff.restore(world.state["name"])
        assert upgrade.wait(300) == 0
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
    done = step_done_at(world, STEP_RECONNECT)
    # the run waited for them and finished them well before the MN's 60 s ping round
    assert restored < done < restored + 30
    end = world.end_state()
    assert (end["journal"], end["proof_ok"], end["inventory_same"]) == ("ok", True, True)
    assert end["agents"] == [NEWEST.version] * len(world.state["nodes"])
    assert end["vms_same_boot_id"]
    assert run_state(world)["proof"]["verdict"] == "ok"
    assert run_state(world).get("pending") == []
    # the MN's log stays readable in a storm: not a line (or a dozen) per host
    lines = sum(len(f.read_text().splitlines()) for f in (world.mn_home / "mn").glob("*.log"))
    assert lines < HOSTS, lines


def test_hosts_gone_for_good_are_named_and_the_operator_finishes_without_them(farm_world):
    world = farm_world
    cut = cutoff.pick_hosts(world.state["name"], count=CUT)
    watcher = cut_when_the_new_mn_starts(world, cut)
    failed = world.skylift(*world.upgrade_argv(), "--stall-timeout", "8")
    watcher.join(10)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    said = failed.stdout + failed.stderr
    assert "upgrade finish --accept-pending" in said
    assert "VM HA is held off for the whole cloud" in said

    status = json.loads(world.skylift("upgrade", "status", "--json").stdout)
    assert status["status"] == "failed"
    assert {i["address"] for i in status["pending"]} == set(cut)
    assert {i["reason"] for i in status["pending"]} == {"timeout"}
    assert status["vm_ha_held_off"] is True
    report = (single_mn.run_dir(world.mn_home) / "report.json")
    sections = {s["title"]: s for s in json.loads(report.read_text())["sections"]}
    pending_section = sections["Pending: not converged when the run stopped"]
    assert {row["address"] for row in pending_section["table"]} == set(cut)
    mn_url = world.state["mn"]["url"]
    token = (world.mn_home / "mn" / "admin-token").read_text().strip()
    ha = httpx.get(f"{mn_url}/v1/ha", headers={"Authorization": f"Bearer {token}"}).json()
    assert (ha["enabled"], ha["held_off_by_upgrade"]) == (False, f"upgrade to {NEWEST.version}")

    # finishing without them is a choice the operator names; without it nothing changes
    refused = world.skylift("upgrade", "finish")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert json.loads(world.skylift("upgrade", "status", "--json").stdout)["status"] == "failed"

    finished = world.skylift("upgrade", "finish", "--accept-pending")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    state = run_state(world)
    assert state["proof"]["verdict"] == f"{CUT} pending"
    assert state["proof"]["ok"] is True
    assert len(state["proof"]["pending"]) == CUT
    assert state["proof"]["vms_unverified"] > 0
    assert {i["address"] for i in state["accepted_pending"]} == set(cut)
    assert world.setting("ha", "enable") == "true"
    ha = httpx.get(f"{mn_url}/v1/ha", headers={"Authorization": f"Bearer {token}"}).json()
    assert ha["held_off_by_upgrade"] is None
    assert boot_ids_kept(world, skip=set(cut))
    status = json.loads(world.skylift("upgrade", "status", "--json").stdout)
    assert (status["status"], len(status["pending"]), status["pending_accepted"]) == (
        "ok", CUT, True)

    # when they return, the MN upgrades each one; status stops listing them
    cutoff.restore(world.state["name"])

    def converged() -> bool:
        st = json.loads(world.skylift("upgrade", "status", "--json").stdout)
        return st["pending"] == [] and st.get("pending_converged_since") == CUT

    wait_until(converged, 120, "the returning hosts upgraded by the MN")
    assert world.agent_versions() == [NEWEST.version] * len(world.state["nodes"])
    assert boot_ids_kept(world)


def test_a_run_stopped_while_hosts_are_pending_reports_them_and_resumes(farm_world):
    world = farm_world
    cut = cutoff.pick_hosts(world.state["name"], count=CUT)
    watcher = cut_when_the_new_mn_starts(world, cut)
    upgrade = world.popen_upgrade(*world.upgrade_argv())
    try:
        watcher.join(300)
        wait_until(lambda: pending_by_reason(world).get("timeout") == set(cut), 120,
                   "the cut-off hosts reported pending")
        upgrade.send_signal(signal.SIGTERM)  # the operator stops it (like Ctrl+C)
        assert upgrade.wait(60) != 0
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
    status = json.loads(world.skylift("upgrade", "status", "--json").stdout)
    assert (status["status"], status["in_flight"]) == ("running", STEP_RECONNECT)
    assert {i["address"] for i in status["pending"]} == set(cut)
    report = json.loads((single_mn.run_dir(world.mn_home) / "report.json").read_text())
    sections = {s["title"]: s for s in report["sections"]}
    table = sections["Pending: not converged when the run stopped"]["table"]
    assert {(row["address"], row["reason"]) for row in table} == {(a, "timeout") for a in cut}

    cutoff.restore(world.state["name"])
    resumed = world.skylift("upgrade", "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    end = world.end_state()
    assert (end["journal"], end["proof_ok"], end["vms_same_boot_id"]) == ("ok", True, True)
