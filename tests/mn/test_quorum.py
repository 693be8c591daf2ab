"""An MN whose Galera member loses quorum goes to maintenance, says why, drives no host, and
comes back on its own once the member rejoins (skylift.mn.quorum); on any other database the
watch does nothing at all.

The cluster test runs a real MN on member 3 of a real three-member Galera cluster
(skylift.lab.galera_lab) and cuts that member's link: the member goes non-Primary, and the MN
must notice, refuse, stop holding the VIP (skylift.ha.check) and come back when the link does.
The MN reaches its member over the member's unix socket, as an MN reaches the member on its
own node: a partition cuts the members apart, not an MN from its own member (the lab's cut
takes the member's link on the bridge down, which the root namespace uses too).

Lab block 93 is this file's own (no lab name of the tests maps to it, and no other test
builds namespaces on it); tests_support.block_lock keeps two runs apart. The cluster needs
root, mariadbd, galera-4, rsync and iproute2 (scripts/services.sh installs them; a missing
one fails with the lab's error, never a skip).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa
from tests_support import block_lock, wait_for

from skylift.agent.launch import free_port
from skylift.db.engine import Database
from skylift.db.wsrep import WsrepStatus
from skylift.lineage import NEWEST
from skylift.mn.heartbeat import mn_heartbeat
from skylift.mn.launch import MnHandle, start_mn, stop_mn
from skylift.mn.mode import RunMode
from skylift.mn.quorum import QuorumWatch, lost_finding, may_serve
from skylift.mn.state import MnState

BLOCK = 93


# --- the decision, from a member's wsrep state: no cluster needed -------------------------
def wsrep(state: str, status: str = "Primary", ready: str = "ON", size: int = 3) -> WsrepStatus:
    return WsrepStatus.from_rows({"wsrep_local_state_comment": state,
                                  "wsrep_cluster_status": status, "wsrep_ready": ready,
                                  "wsrep_connected": "ON", "wsrep_cluster_size": str(size)})


def test_only_a_primary_member_serves_and_only_a_synced_one_brings_the_mn_back():
    assert may_serve(wsrep("Synced"), serving=True) and may_serve(wsrep("Synced"), serving=False)
    # a donor stays in the Primary component: an MN serving keeps serving through an SST...
    assert may_serve(wsrep("Donor/Desynced"), serving=True)
    # ...but an MN out of quorum comes back on a Synced member only
    assert not may_serve(wsrep("Donor/Desynced"), serving=False)
    assert not may_serve(wsrep("Joined"), serving=True)
    cut = wsrep("Initialized", status="non-Primary", ready="OFF", size=1)
    assert not may_serve(cut, serving=True)
    assert lost_finding(cut).startswith("the database member of this MN is not in the "
                                        "Primary component (non-Primary, 1 member(s) in view)")


def test_an_mn_out_of_quorum_is_in_maintenance_and_does_not_serve(tmp_path):
    db = Database.from_string(f"sqlite:///{tmp_path / 'x.db'}")
    run = RunMode("normal", NEWEST.version, NEWEST.revision, NEWEST.version, "newest")
    mn = MnState(db=db, engine=db.engine(), run=run, token="t", node_root=tmp_path)
    assert (mn.mode, mn.serving, mn.restricted, mn.reason) == ("normal", True, False, "newest")
    mn.quorum_lost = lost_finding(wsrep("Initialized", "non-Primary", "OFF", 1))
    assert (mn.mode, mn.serving, mn.restricted, mn.heartbeat_state) == (
        "maintenance", False, True, "maintenance")
    assert mn.reason == mn.quorum_lost and mn.restricted_why.startswith(mn.quorum_lost)
    mn.engine.dispose()


# --- no Galera: the watch stays idle -------------------------------------------------------
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_the_watch_does_nothing_without_galera(dialect, make_db, tmp_path):
    """SQLite and PostgreSQL are never asked anything; a plain MariaDB answers wsrep_on OFF
    once and is never asked again."""
    db = make_db(dialect)
    run = RunMode("normal", NEWEST.version, NEWEST.revision, NEWEST.version, "newest")
    mn = MnState(db=db, engine=db.engine(), run=run, token="t", node_root=tmp_path)

    async def watch() -> tuple[QuorumWatch, bool]:
        w = QuorumWatch(mn, interval=0.05)
        await w.start()
        await asyncio.sleep(0.5)
        running = w.running
        await w.stop()
        return w, running

    try:
        w, running = asyncio.run(watch())
    finally:
        mn.engine.dispose()
    assert (w.galera, running, mn.quorum_lost, mn.mode, mn.serving) == (
        False, False, None, "normal", True)


# --- a real MN on a real Galera cluster -----------------------------------------------------
@pytest.fixture(scope="module")
def galera(tmp_path_factory):
    """Three members on lab block 93, the newest release's cloud seeded through member 1."""
    from skylift.lab.galera_lab import start_galera
    from skylift.lab.netns import LabNetwork, remove_lab_network
    from skylift.lab.seed import seed

    with block_lock(BLOCK):
        remove_lab_network(BLOCK)   # leftovers of an interrupted run
        base = tmp_path_factory.mktemp("quorum")
        net = LabNetwork(BLOCK, base / "nodes")
        lab = None
        try:
            nodes = net.create(["db-1", "db-2", "db-3"])
            lab = start_galera(net, nodes, base / "galera")
            t = time.monotonic()
            seed(Database.from_string(lab.url(lab.members[0]), lab.password()),
                 NEWEST.version, hosts=1, vms=0)
            print(f"cluster formed in {lab.times['total']:.1f}s, "
                  f"seeded in {time.monotonic() - t:.1f}s")
            yield lab
        finally:
            if lab is not None:
                lab.remove_all()
            remove_lab_network(BLOCK)


def version(handle: MnHandle) -> dict:
    return httpx.get(handle.url + "/v1/version", timeout=5).json()


def health_check(handle: MnHandle) -> subprocess.CompletedProcess:
    """The command keepalived runs on this MN."""
    return subprocess.run([sys.executable, "-m", "skylift.ha.check", "--url", handle.url,
                           "--timeout", "3"], capture_output=True, text=True, timeout=30)


def heartbeat_of(lab, uuid: str) -> dict:
    """This MN's heartbeat row as the majority sees it (member 1)."""
    eng = Database.from_string(lab.url(lab.members[0]), lab.password()).engine(
        poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5, "read_timeout": 10})
    try:
        with eng.connect() as conn:
            # a causal read: what any member committed before this read is applied here
            conn.execute(sa.text("SET SESSION wsrep_sync_wait = 1"))
            return dict(conn.execute(sa.select(mn_heartbeat).where(
                mn_heartbeat.c.uuid == uuid)).mappings().one())
    finally:
        eng.dispose()


def test_an_mn_whose_member_loses_quorum_goes_to_maintenance_and_comes_back(galera, tmp_path):
    lab = galera
    three = lab.members[2]
    db = Database.from_string(lab.url(three, socket=True), lab.password())
    handle = start_mn(db.url.render_as_string(hide_password=False), port=free_port(),
                      env={"SKYLIFT_HOME": str(tmp_path / "home")}, timeout=60)
    try:
        ok = version(handle)
        assert (ok["mode"], ok["serving"]) == ("normal", True), ok
        assert health_check(handle).returncode == 0
        assert heartbeat_of(lab, handle.instance)["state"] == "running"

        lab.cut(three)
        try:
            t = time.monotonic()
            lost = wait_for(lambda: (lambda v: v if v["mode"] == "maintenance" else None)(
                version(handle)), 15, "maintenance after the cut")
            print(f"cut: the MN in maintenance after {time.monotonic() - t:.1f}s")
            assert lost["serving"] is False and "non-Primary" in lost["reason"], lost
            with handle.client() as client:
                # a write of the cloud, and one a maintenance MN would take: both refused
                # by the gate, saying why (the member would refuse them anyway: 1047)
                for method, path, body in (("POST", "/v1/zones", {"name": "minority"}),
                                           ("PUT", "/v1/global-settings/ha/enable",
                                            {"value": "false"})):
                    refused = client.request(method, path, json=body)
                    assert refused.status_code == 503, (path, refused.text)
                    assert refused.json()["error"] == "QuorumLost"
                    assert "non-Primary" in refused.json()["why"]
                    assert refused.headers["retry-after"]
                # it drives no host: the connection manager is stopped
                assert client.get("/v1/connections").status_code == 503
                assert client.get("/v1/health").json()["mode"] == "maintenance"
            check = health_check(handle)
            assert check.returncode == 1 and "non-Primary" in check.stderr, check.stderr
            assert lab.password() not in handle.log_path.read_text()
        finally:
            restored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
            lab.restore(three)
        t = time.monotonic()
        back = wait_for(lambda: (lambda v: v if v["serving"] else None)(version(handle)), 40,
                        "serving again after the link came back")
        print(f"restore: the MN serves again after {time.monotonic() - t:.1f}s")
        assert back["mode"] == "normal" and "non-Primary" not in back["reason"]
        row = heartbeat_of(lab, handle.instance)   # written again, and seen by the majority
        assert row["state"] == "running" and row["heartbeat_at"] >= restored_at, row
        assert health_check(handle).returncode == 0
        with handle.client() as client:
            assert client.get("/v1/connections").status_code == 200   # driving again
            assert client.get("/v1/global-settings/ha/enable").status_code == 200
        # nothing written on the minority reached the cluster
        assert "minority" not in lab.sql(lab.members[0], "SELECT name FROM skylift.zones;")
        log = handle.log_path.read_text()
        assert log.count("goes to maintenance and drives no host") == 1
        assert log.count("this management node serves again") == 1
    finally:
        stop_mn(handle)
    assert heartbeat_of(lab, handle.instance)["state"] == "stopped"
