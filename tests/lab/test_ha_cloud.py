"""The HA cloud of the lab (skylift.lab.ha_lab): three MNs in namespaces, each on its own
Galera member, sharing the hosts, behind a keepalived VIP — healthy by `skylift ha status`,
surviving the death of the VIP holder's node with no write lost and no VM restarted, taking
the node back, and a partitioned minority that serves no writes.

Lab names "ha-t", "ha-old" and "ha-two" map to lab blocks 52, 73 and 28 (their namespaces
and bridges, skyl52*/skyl73*/skyl28*): no other test builds namespaces there; a lock per
block keeps two runs apart. The figures asserted here are loose bounds (this machine runs the tests side by side);
bench/ha_failover.py measures them.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager

import pytest

from skylift.lab import failover, ha_lab
from skylift.lab.installation import LabSpec, down, up
from skylift.lab.netns import ip
from skylift.lab.state import block_of, read_state
from tests_support import block_lock, run_cli

pytestmark = pytest.mark.slow

NAME, OLD, TWO = "ha-t", "ha-old", "ha-two"


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory):
    return tmp_path_factory.mktemp("ha-home")


@pytest.fixture
def at_home(lab_home, skylift_home, monkeypatch):
    """Each test runs in the module's state folder (where its labs live)."""
    monkeypatch.setenv("SKYLIFT_HOME", str(lab_home))
    return lab_home


@contextmanager
def ha_lab_up(name: str, **spec):
    """A lab HA cloud of this name while the block is held; taken down after."""
    with block_lock(block_of(name)):
        down(name)
        try:
            yield up(LabSpec(name=name, agent_port=0, **spec))
        finally:
            down(name)


@pytest.fixture(scope="module")
def cloud(lab_home):
    """A 4.3.12 HA cloud: 3 MNs, 3 hosts, 4 VMs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKYLIFT_HOME", str(lab_home))
        with ha_lab_up(NAME, release="4.3.12", hosts=3, vms=4, mns=3):
            yield NAME


def ha_status(capsys, monkeypatch, state, *more) -> tuple[int, dict | str]:
    """`skylift ha status --json` on the first MN (its state folder)."""
    with monkeypatch.context() as mp:
        mp.setenv("SKYLIFT_HOME", state["ha"]["mns"][0]["home"])
        code, out, err = run_cli(capsys, "ha", "status", "--json", *more)
    return code, (json.loads(out) if out.strip().startswith("{") else out + err)


def wait_healthy(capsys, monkeypatch, state, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        code, report = ha_status(capsys, monkeypatch, state)
        if code == 0 or time.monotonic() > deadline:
            assert code == 0, report
            return report
        time.sleep(1.0)


def test_a_4312_ha_cloud_is_healthy_with_one_vip_holder_and_hosts_shared(
        cloud, at_home, capsys, monkeypatch):
    state = read_state(cloud)
    report = wait_healthy(capsys, monkeypatch, state)
    mns = report["mns"]
    assert [m["name"] for m in mns] == ["mn-1", "mn-2", "mn-3"]
    assert [m["owns_vip"] for m in mns].count(True) == 1
    assert all(isinstance(m["owns_vip"], bool) for m in mns)
    assert report["vip_holder"] == next(m["name"] for m in mns if m["owns_vip"])
    for m in mns:
        assert m["mode"] == "normal" and m["release"] == "4.3.12" and m["serving"]
        assert m["galera"]["local_state_comment"] == "Synced"
        assert m["galera"]["cluster_status"] == "Primary"
        assert m["galera"]["cluster_size"] == 3
        assert m["ssh"]["reachable"] is True
        assert m["address"] == m["url"].split("//")[1].split(":")[0]
    # every resource is driven by exactly one MN
    assert sum(m["hosts_owned"] for m in mns) == len(state["nodes"])
    # the text form says the same, and who holds the VIP
    with monkeypatch.context() as mp:
        mp.setenv("SKYLIFT_HOME", state["ha"]["mns"][0]["home"])
        code, out, _ = run_cli(capsys, "ha", "status")
    assert code == 0 and f"the VIP on {report['vip_holder']}" in out
    # and `lab status` shows the HA cloud too
    code, out, _ = run_cli(capsys, "lab", "status", "--name", NAME, "--json")
    lab = json.loads(out)
    assert code == 0 and lab["ha"]["healthy"] and lab["ha"]["vip_holder"] == report["vip_holder"]
    assert lab["mn"]["alive"] and lab["vms_same_boot_id"] == lab["vms"]


def test_the_console_at_the_vip_shows_the_holder_and_every_mn(cloud, at_home, capsys,
                                                              monkeypatch):
    from pathlib import Path

    from browser_kit import chrome, trusting, wait_for
    from console_kit import open_console, script_errors, sign_in, text

    state = read_state(cloud)
    holder = wait_healthy(capsys, monkeypatch, state)["vip_holder"]
    homes = [Path(m["home"]) for m in state["ha"]["mns"]]
    certs = [p for home in homes for p in (home / "mn" / "pki").glob("*.pem")
             if "BEGIN CERTIFICATE" in p.read_text()]
    with chrome(extra=trusting(*certs)) as browser:
        open_console(browser, state["mn"]["url"])  # the VIP: the holder answers
        sign_in(browser, (homes[0] / "mn" / "admin-token").read_text().strip())
        wait_for(browser, "#vip-holder", timeout=20)
        assert text(browser, "#vip-holder").endswith(f"held by this MN, {holder}")
        rows = browser.execute_script(
            "return [...document.querySelectorAll('#management-nodes table:first-of-type "
            "tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent));")
        assert [r[0].removesuffix(" (this one)") for r in rows] == ["mn-1", "mn-2", "mn-3"]
        assert [r[1] for r in rows] == [m["address"] for m in state["ha"]["mns"]]
        assert [r[2] for r in rows].count("holds it") == 1
        assert next(r for r in rows if r[2] == "holds it")[0] == f"{holder} (this one)"
        # the live MNs (their heartbeats), each on its release, sharing the hosts out
        live = wait_for(browser, lambda d: d.execute_script(
            "const t = document.querySelectorAll('#management-nodes table')[1];"
            "return t && [...t.querySelectorAll('tbody tr')].map((tr) =>"
            " [...tr.children].map((td) => td.textContent));"))
        assert len(live) == 3 and all(r[1] == "4.3.12" for r in live)
        assert sum(int(r[3]) for r in live) == len(state["nodes"])
        assert not script_errors(browser)


def test_upgrade_check_on_an_ha_cloud_is_the_multi_mn_procedures(cloud, at_home, capsys,
                                                                 monkeypatch):
    """On an MN of an HA cloud `upgrade check` runs the multi-MN procedure's checks (every MN
    over SSH, Galera, one release, the HA suite), not the single-MN refusal; without the HA
    suite it exits 2 naming it."""
    state = read_state(cloud)
    galera = ha_lab.galera_of(state)
    with monkeypatch.context() as mp:
        mp.setenv("SKYLIFT_HOME", state["ha"]["mns"][0]["home"])
        mp.setenv("SKYLIFT_DB_PASSWORD", galera.password())
        code, out, err = run_cli(capsys, "upgrade", "check", "--json")
    assert code == 2, out + err
    report = json.loads(out)
    status = {f["check_id"]: f["severity"] for f in report["findings"]}
    assert "single-management-node" not in status
    assert status.get("ha-suite-verified") == "inhibitor"
    checks = {c["id"]: c["status"] for c in report["checks"]}
    assert {checks[c] for c in ("mns-reachable-over-ssh", "galera-synced",
                                "mns-same-release", "mns-backup-disk-space")} == {"passed"}


def test_the_vip_holders_node_dies_and_nothing_is_lost(cloud, at_home, tmp_path, capsys,
                                                       monkeypatch):
    state = read_state(cloud)
    wait_healthy(capsys, monkeypatch, state)
    got = failover.failover(state, tmp_path / "probes")
    assert got["processes_killed"] >= 4          # MN, mariadbd, keepalived, sshd
    assert got["new_holder"] != got["victim"]
    assert got["vip_move_s"] < 10.0              # keepalived: 3 x advert_int + skew
    assert got["api_back_s"] < 15.0
    assert got["writes_acked"] > 0
    assert got["writes_lost"] == 0, got["lost_names"]
    assert got["vm_restarts"] == 0 and got["vms_started_twice"] == 0
    assert got["vm_probes_sent"] > 0 and got["vm_probes_lost"] == 0

    # the dead MN is a finding, named; exit 2
    code, report = ha_status(capsys, monkeypatch, state, "--timeout", "2")
    assert code == 2
    dead = next(m for m in report["mns"] if m["name"] == got["victim"])
    assert dead["answers"] is False
    assert any(got["victim"] in f for f in report["findings"])
    assert report["vip_holder"] == got["new_holder"]

    # the node boots again: Galera by IST, its share of the hosts back, the VIP stays
    back = failover.rejoin(state, got["victim"])
    assert back["transfer"] == "IST"
    assert back["vip_holders_seen"] == [got["new_holder"]]
    report = wait_healthy(capsys, monkeypatch, state)
    assert next(m for m in report["mns"] if m["name"] == got["victim"])["hosts_owned"] >= 0
    assert sum(m["hosts_owned"] for m in report["mns"]) == len(state["nodes"])


def _in_node(state: dict, name: str, code: str) -> dict:
    """Run Python inside an MN node's namespace (the only place a cut node is reached from);
    its JSON answer."""
    net, nodes = ha_lab.network(state)
    node = next(n for n in nodes if n.name == name)
    done = net.run(node, [sys.executable, "-c", code], capture_output=True, text=True,
                   timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


ASK = """
import httpx, json, ssl
ctx = ssl.create_default_context(cafile={ca!r})
h = {{"Authorization": "Bearer " + open({token!r}).read().strip()}}
with httpx.Client(base_url={url!r}, verify=ctx, headers=h, timeout=5) as c:
    v = c.get("/v1/version").json()
    w = c.post("/v1/zones", json={{"name": {zone!r}}}) if {write!r} else None
print(json.dumps({{"version": v, "write": w.status_code if w is not None else None,
                  "body": w.json() if w is not None else None}}))
"""


def test_a_partitioned_minority_serves_no_writes_and_rejoins(cloud, at_home, capsys,
                                                             monkeypatch):
    state = read_state(cloud)
    wait_healthy(capsys, monkeypatch, state)
    holder = ha_lab.holder(state)["name"]
    victim = next(m for m in state["ha"]["mns"] if m["name"] != holder)
    home = victim["home"]
    ask = dict(ca=f"{home}/mn/pki/ca.pem", token=f"{home}/mn/admin-token", url=victim["url"])
    ip(["link", "set", victim["node"]["veth"], "down"])
    try:
        deadline = time.monotonic() + 30
        while True:
            got = _in_node(state, victim["name"], ASK.format(zone="x", write=False, **ask))
            if got["version"]["mode"] == "maintenance" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        v = got["version"]
        assert v["mode"] == "maintenance" and v["serving"] is False
        assert "Primary" in v["reason"]
        got = _in_node(state, victim["name"],
                       ASK.format(zone="minority-write", write=True, **ask))
        assert got["write"] == 503
        assert "Primary" in got["body"]["why"]
    finally:
        ip(["link", "set", victim["node"]["veth"], "up"])
    report = wait_healthy(capsys, monkeypatch, state, timeout=90)
    assert report["vip_holder"] == holder            # the VIP never moved
    token, verify = failover._access(state)
    with failover._client(state["mn"]["url"], token, verify) as c:
        zones = {z["name"] for z in c.get("/v1/zones").json()["items"]}
    assert "minority-write" not in zones


def test_a_371_ha_cloud_comes_up_healthy(lab_home, at_home, capsys, monkeypatch):
    """An older release's MNs (the lab's stand-in runs in maintenance on the old schema)
    still serve their cloud: the VIP is held, Galera is whole, status is healthy."""
    with ha_lab_up(OLD, release="3.7.1", hosts=2, vms=2, mns=3) as state:
        report = wait_healthy(capsys, monkeypatch, state)
        assert {m["release"] for m in report["mns"]} == {"3.7.1"}
        assert [m["owns_vip"] for m in report["mns"]].count(True) == 1
        assert all(m["galera"]["cluster_size"] == 3 for m in report["mns"])
    assert ip(["link", "show", "dev", f"skyl{block_of(OLD)}br"], check=False).returncode != 0


def test_two_mns_with_an_arbitrator_survive_the_loss_of_the_vip_holder(
        lab_home, at_home, tmp_path, capsys, monkeypatch):
    """Two MNs and Galera's arbitrator (garbd) as the third vote: either MN may die and the
    other keeps a majority, the VIP and every write."""
    with ha_lab_up(TWO, release="4.3.12", hosts=2, vms=2, mns=2) as state:
        report = wait_healthy(capsys, monkeypatch, state)
        assert [m["name"] for m in report["mns"]] == ["mn-1", "mn-2"]
        assert all(m["galera"]["cluster_size"] == 3 for m in report["mns"])  # + garbd
        got = failover.failover(state, tmp_path / "probes")
        assert got["writes_acked"] > 0 and got["writes_lost"] == 0, got
        assert got["vm_restarts"] == 0 and got["vip_move_s"] < 10.0
        code, report = ha_status(capsys, monkeypatch, state, "--timeout", "2")
        assert code == 2
        alive = next(m for m in report["mns"] if m["name"] == got["new_holder"])
        # the survivor and the arbitrator: two of three votes, still Primary
        assert alive["galera"]["cluster_status"] == "Primary"
        assert alive["galera"]["cluster_size"] == 2 and alive["serving"]


@pytest.mark.parametrize("argv", [
    ["lab", "up", "--release", "4.3.12", "--mns", "0"],
    ["lab", "up", "--release", "4.3.12", "--mns", "9"],
    ["lab", "up", "--release", "4.3.12", "--mns", "3", "--nodes", "ns"],
    ["lab", "up", "--release", "4.3.12", "--mns", "3", "--db", "sqlite:////tmp/x.db"],
    ["ha", "status", "--timeout", "0"],
    ["ha", "status", "--bogus"],
    ["ha"],
    ["ha", "status", "extra"],
])
def test_usage_mistakes_exit_2_and_change_nothing(argv, capsys, skylift_home):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, out + err
    assert not (skylift_home / "lab").exists() or not any((skylift_home / "lab").iterdir())


def test_ha_status_on_an_mn_without_an_ha_record_exits_2_and_says_so(capsys, skylift_home):
    code, out, err = run_cli(capsys, "ha", "status")
    assert code == 2
    assert "no HA record" in out + err and "ha.json" in out + err
