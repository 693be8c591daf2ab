"""The single-MN upgrade end to end: a real lab cloud, real processes, the operator's commands."""

from __future__ import annotations

import itertools

import httpx
import pytest

from skylift.lineage import NEWEST
from skylift.upgrade.single_mn import build_plan
from upgrade_world import World

STEPS = [ps.key for ps in build_plan(False).steps()]
_names = itertools.count()


@pytest.fixture
def world(request):
    w = World(f"up{next(_names)}")
    yield w
    from skylift.lab.installation import down

    down(w.state["name"])


def expected_end_state(world) -> dict:
    """An uninterrupted run's end state: every agent of the lab's nodes on the new release."""
    return {"db_release": NEWEST.version, "inventory_same": True, "mn": (NEWEST.version, "normal"),
            "vm_ha": "true", "vms_same_boot_id": True,
            "agents": [NEWEST.version] * len(world.state["nodes"]),
            # every agent was given its certificate by the reconnect that upgraded it
            "agents_on_tls_only": len(world.state["nodes"]),
            "repo": NEWEST.version, "slot": NEWEST.version, "journal": "ok", "proof_ok": True,
            "live_mns": 1, "mn_listeners": 1}


def test_uninterrupted_upgrade_reaches_the_end_state(world):
    console_before = httpx.get(f"{world.mn_version and world.state['mn']['url']}/").text
    out = world.skylift(*world.upgrade_argv())
    assert out.returncode == 0, out.stdout + out.stderr
    assert world.end_state() == expected_end_state(world)
    # the browser loads new asset names after the upgrade: no Ctrl+F5
    console_after = httpx.get(f"{world.state['mn']['url']}/").text
    assert console_before != console_after
    assert "/static/app." in console_after
    report = (world.mn_home / "upgrade" / "current" / "report.md").read_text()
    assert "every recorded resource still there | yes" in report


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_any_step_then_resume_ends_as_an_uninterrupted_run(world, step):
    killed = world.run_until_killed("started", step)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    import json

    where = json.loads(world.skylift("upgrade", "status", "--json").stdout)
    assert (where["status"], where["in_flight"]) == ("running", step)
    resumed = world.skylift("upgrade", "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert world.end_state() == expected_end_state(world)


def test_rollback_before_the_point_of_no_return_restores_the_old_cloud(world):
    killed = world.run_until_killed("done", "management-node/migrate-database")
    assert killed.returncode == -9
    assert world.setting("ha", "enable") == "false"  # turned off by the upgrade
    out = world.skylift("upgrade", "rollback", "--yes")
    assert out.returncode == 0, out.stdout + out.stderr
    from skylift.db.migrate import status
    from skylift.repo.local import LocalRepo

    assert status(world.db).release == "3.7.1"
    assert world.mn_version()["release"] == "3.7.1"
    assert world.setting("ha", "enable") == "true"
    assert world.digests() == world.before_digests
    assert LocalRepo(world.mn_home / "node").info("c74").release == "3.7.1"
    assert world.agent_versions() == ["3.7.1"] * len(world.state["nodes"])
    assert world.live_mns() == 1
    assert world.mn_listeners() == 1


def test_rollback_after_the_point_of_no_return_is_refused_then_resume_finishes(world):
    killed = world.run_until_killed("done", "management-node/start-new-mn")
    assert killed.returncode == -9
    out = world.skylift("upgrade", "rollback", "--yes")
    assert out.returncode == 2
    assert "point of no return" in out.stderr or "roll forward" in out.stderr
    assert world.skylift("upgrade", "resume").returncode == 0
    assert world.end_state() == expected_end_state(world)


def test_a_damaged_artefact_stops_the_upgrade_before_anything_changes(world):
    data = bytearray(world.arts.installer.read_bytes())
    data[len(data) // 2] ^= 0x01
    world.arts.installer.write_bytes(bytes(data))
    out = world.skylift(*world.upgrade_argv())
    assert out.returncode != 0
    assert world.arts.installer.name in out.stderr
    assert world.setting("ha", "enable") == "true"
    assert world.mn_version()["release"] == "3.7.1"
    assert world.digests() == world.before_digests


def test_incremental_upgrade_from_an_online_repository(world):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", str(world.arts.image.parent)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time

        for _ in range(100):  # wait until it serves
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        out = world.skylift("upgrade", "run", "--incremental", "--repo-url",
                            f"http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        server.wait()
    assert out.returncode == 0, out.stdout + out.stderr
    assert world.end_state() == expected_end_state(world)
    fetched = world.mn_home / "upgrade" / "current" / "artefacts"
    assert (fetched / world.arts.image.name).read_bytes() == world.arts.image.read_bytes()
