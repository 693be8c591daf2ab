"""The multi-MN upgrade on the lab's HA cloud (three MNs in namespaces on Galera behind a
keepalived VIP, farm hosts), run as an operator runs it: `skylift upgrade …` on the MN node
that holds the VIP (skylift.lab.ha_upgrade).

- a peer that refuses SSH is an inhibitor naming it: exit 2, nothing changed, nothing left;
- a run stopped before the point of no return is rolled back: every MN, the database and
  the HA suite as before;
- the upgrade from 3.7.1 end to end, watched at the VIP: never a refused connection or a
  timeout, no acknowledged write lost, every MN on the new release, the HA cloud whole (a
  write through the VIP is read at every MN), the journal on every MN;
- kill -9 of the upgrade at seeded random moments inside its steps (and of the resume), then
  `upgrade resume`: the same end state;
- the VIP holder's node dies mid-upgrade: the VIP moves, `upgrade resume` on the new holder
  continues the same run and names the MN left behind; once that node is back, resume
  brings it in.

Lab names map to blocks 34 ("ha-u1"), 22 ("ha-kill") and 99 ("ha-dies"); no other test uses
them. Figures (VIP gaps, the maintenance window, time) belong to bench/upgrade_ha.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from skylift.lab import ha_lab, ha_upgrade
from skylift.lab.failover import ProbeWrites, _access, _client
from skylift.lab.installation import LabSpec, down, up
from skylift.lab.probes import Probes
from skylift.lab.state import block_of, read_state
from skylift.lineage import NEWEST
from tests_support import block_lock, wait_for

pytestmark = pytest.mark.slow

MAIN, KILL, DIES = "ha-u1", "ha-kill", "ha-dies"
OLD = "3.7.1"


@contextmanager
def ha_cloud(name: str):
    """A 3.7.1 HA cloud of three MNs, 3 farm hosts and 4 VMs, while the lab's block is held."""
    with block_lock(block_of(name)):
        down(name)
        try:
            up(LabSpec(name=name, agent_port=0, release=OLD, hosts=3, vms=4, mns=3, farm=True))
            yield read_state(name)
        finally:
            down(name)


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ha-upgrade-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKYLIFT_HOME", str(home))
        yield home


@pytest.fixture
def at_home(lab_home, monkeypatch):
    """The test's labs live in the module's state folder (a short path: Galera's sockets)."""
    monkeypatch.setenv("SKYLIFT_HOME", str(lab_home))
    return lab_home


@pytest.fixture(scope="module")
def cloud(lab_home):
    with ha_cloud(MAIN) as state:
        yield state


def skylift(state, *args, on=None, **kw):
    return ha_upgrade.skylift_on(state, on, list(args), **kw)


def run_args(state) -> list[str]:
    return ["upgrade", "run", "--offline", *ha_upgrade.artefact_args(state)]


def ha_view(state) -> dict:
    done = skylift(state, "ha", "status", "--json")
    return json.loads(done.stdout)


def upgrade_status(state, on=None) -> dict:
    return json.loads(skylift(state, "upgrade", "status", "--json", on=on).stdout)


def releases(state) -> dict[str, tuple[str, str]]:
    return {mn["name"]: (mn["release"], mn["mode"]) for mn in ha_view(state)["mns"]}


def assert_upgraded(state) -> None:
    """Every MN on the new release in normal mode, the HA cloud healthy, the run ok."""
    view = wait_for(lambda: (v := ha_view(state))["healthy"] and v, 60, "a healthy HA cloud")
    assert {mn["name"]: (mn["release"], mn["mode"]) for mn in view["mns"]} == {
        m["name"]: (NEWEST.version, "normal") for m in state["ha"]["mns"]}
    st = upgrade_status(state)
    assert st["status"] == "ok" and st["steps_done"] == st["steps"], st
    assert st["behind"] == {}
    assert st["ha_proof"]["ok"] is True


def kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


# --- on one cloud, in this order --------------------------------------------------------------
def test_a_peer_that_refuses_ssh_is_an_inhibitor_and_nothing_changes(cloud):
    peer = next(m["name"] for m in cloud["ha"]["mns"] if m != ha_lab.holder(cloud))
    ha_lab.stop_sshd(cloud, peer)
    try:
        done = skylift(cloud, *run_args(cloud))
    finally:
        ha_lab.start_sshd_again(cloud, peer)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot log in to" in done.stderr and peer in done.stderr
    assert {r for r, _ in releases(cloud).values()} == {OLD}
    st = upgrade_status(cloud)
    assert st["status"] == "refused"
    # nothing blocks the next try: the checks pass now that the peer takes SSH again
    check = skylift(cloud, "upgrade", "check", *ha_upgrade.artefact_args(cloud))
    assert check.returncode == 0, check.stdout[-2000:]


def test_a_run_stopped_before_the_point_of_no_return_rolls_back_everywhere(cloud):
    suites = {m["name"]: json.loads((Path(m["home"]) / "ha.json").read_text())["ha_suite"]
              for m in cloud["ha"]["mns"]}
    proc = skylift(cloud, *run_args(cloud), "--json", popen=True)
    journal = Path(ha_lab.holder(cloud)["home"]) / "upgrade" / "current" / "journal.jsonl"
    wait_for(lambda: journal.exists() and "management-nodes/migrate-database" in
             journal.read_text(), 600, "the migration to start")
    kill_group(proc)
    done = skylift(cloud, "upgrade", "rollback", "--yes")
    assert done.returncode == 0, done.stderr[-3000:]
    view = wait_for(lambda: (v := ha_view(cloud))["healthy"] and v, 90, "a healthy HA cloud")
    assert {mn["release"] for mn in view["mns"]} == {OLD}
    assert upgrade_status(cloud)["status"] == "rolled_back"
    assert {m["name"]: json.loads((Path(m["home"]) / "ha.json").read_text())["ha_suite"]
            for m in cloud["ha"]["mns"]} == suites


def test_the_upgrade_from_371_keeps_the_vip_answering_and_loses_nothing(cloud, tmp_path):
    token, verify = _access(cloud)
    vip = cloud["mn"]["url"]
    writes = ProbeWrites(vip, token, verify, "upg", interval=0.2).start()
    with Probes(tmp_path / "probes", api_url=vip, token=token, api_verify=verify,
                api_paths={"vip": "/v1/version"}, api_interval=0.1) as probes:
        done = skylift(cloud, *run_args(cloud))
    writes.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    # every write the VIP acknowledged during the upgrade is there; the proof names them
    with _client(vip, token, verify) as client:
        assert writes.acked and writes.lost(client) == []
    assert upgrade_status(cloud)["status"] == "ok"
    seen = probes.summary.api["vip"]
    assert seen.samples > 100
    # an answer at every sample (a maintenance MN's counts): none refused, none timed out
    assert seen.refused == 0 and seen.timeouts == 0, seen.unavailable
    assert_upgraded(cloud)
    # written after the upgrade through the VIP, read back at every MN's own address
    with _client(vip, token, verify) as client:
        assert client.post("/v1/zones", json={"name": "after-upgrade"}).status_code == 201
    for m in cloud["ha"]["mns"]:
        with _client(f"https://{m['address']}:{cloud['ha']['mn_port']}", token, verify) as c:
            names = {z["name"] for z in c.get("/v1/zones").json()["items"]}
            assert "after-upgrade" in names
    # the journal is on every MN, the same as the coordinator's
    copies = {m["name"]: (Path(m["home"]) / "upgrade" / "current" / "journal.jsonl").read_bytes()
              for m in cloud["ha"]["mns"]}
    assert len(set(copies.values())) == 1


# --- faults -----------------------------------------------------------------------------------
def started(journal: Path, key: str) -> bool:
    """Whether the journal records that step as started (in any run of it)."""
    if not journal.exists():
        return False
    for line in journal.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn last line
        if rec.get("type") == "step_started" and rec.get("step") == key:
            return True
    return False


def kill_inside(proc, journal: Path, key: str, rng: random.Random) -> None:
    """kill -9 of the upgrade (its whole process group) a random moment after `key` starts."""
    wait_for(lambda: started(journal, key) or proc.poll() is not None, 600,
             f"step {key} to start")
    time.sleep(rng.uniform(0.0, 1.0))
    kill_group(proc)


def test_kill_at_random_moments_inside_steps_then_resume_converges(at_home):
    from skylift.upgrade import multi_mn

    rng = random.Random(int(os.environ.get("SKYLIFT_KILL_SEED", "1203")))
    keys = [ps.key for ps in multi_mn.build_plan().steps()]
    changing = keys[keys.index("protect/ship-artefacts"):keys.index("reconnect/reconnect-agents")]
    first = rng.randrange(len(changing) - 1)
    second = rng.randrange(first + 1, len(changing))
    with ha_cloud(KILL) as state:
        journal = Path(ha_lab.holder(state)["home"]) / "upgrade" / "current" / "journal.jsonl"
        proc = skylift(state, *run_args(state), "--json", popen=True)
        kill_inside(proc, journal, changing[first], rng)
        assert upgrade_status(state)["status"] not in ("ok", "refused")
        resumed = skylift(state, "upgrade", "resume", "--json", popen=True)
        kill_inside(resumed, journal, changing[second], rng)
        done = skylift(state, "upgrade", "resume")
        assert done.returncode == 0, done.stderr[-3000:]
        assert upgrade_status(state)["resumes"] >= 2
        assert_upgraded(state)


def test_the_vip_holder_dies_mid_upgrade_and_the_new_holder_continues(at_home):
    with ha_cloud(DIES) as state:
        first = ha_lab.holder(state)
        proc = skylift(state, *run_args(state), "--json", popen=True)
        journal = Path(first["home"]) / "upgrade" / "current" / "journal.jsonl"
        wait_for(lambda: journal.exists() and "refresh-repo-every-mn" in journal.read_text(),
                 300, "the run to reach the repositories")
        ha_lab.kill_node(state, first["name"])
        proc.communicate()
        new = wait_for(lambda: ha_lab.holder(state, besides=first["name"]), 60,
                       "the VIP on another MN")

        def resumed():
            done = skylift(state, "upgrade", "resume")
            return None if done.returncode == 2 and "Galera cluster" in done.stderr else done
        done = wait_for(resumed, 120, "a resume the fencing lets through", interval=2.0)
        # the same run, continued here, up to the MN that is behind
        assert done.returncode == 1, done.stderr[-3000:]
        assert f"{first['name']} ({first['address']}) is behind" in done.stderr
        st = upgrade_status(state, on=new["name"])
        assert st["coordinator"]["member"] == new["name"]
        assert first["name"] in st["behind"]
        ha_lab.restart_node(state, first["name"], state["agent_port"])
        done = skylift(state, "upgrade", "resume")
        assert done.returncode == 0, done.stderr[-3000:]
        assert_upgraded(state)
