"""kill -9 of the upgrade *inside* the MN steps, at the moment two MNs listen on the MN port.

Before the MNs were tracked by identity, a resume after such a kill ended "ok" with three MNs
listening and heartbeating, and a rollback left the old draining MN beside the restored one.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time

import pytest

from test_single_mn import expected_end_state
from upgrade_world import World

_names = itertools.count()


@pytest.fixture
def world():
    w = World(f"hk{next(_names)}")
    yield w
    from skylift.lab.installation import down

    down(w.state["name"])


def kill_when(proc: subprocess.Popen, ready, timeout: float = 180.0) -> None:
    """SIGKILL the upgrade process the first time `ready()` holds (fails if it never does)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the upgrade ended (status {proc.returncode}) first"
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def two_mns_in(world: World, *steps: str):
    return lambda: world.in_flight() in steps and world.mn_listeners() >= 2


# the old MN and the maintenance MN both listen from the end of the first to the end of the
# second: one moment of the handover, whichever step the kill lands in
HANDOVER = ("management-node/start-maintenance-mn", "management-node/drain-and-stop-mn")


@pytest.mark.parametrize("steps", [HANDOVER,
                                   ("management-node/start-new-mn",
                                    "management-node/stop-maintenance-mn")])
def test_kill_while_two_mns_listen_then_resume_leaves_exactly_one(world, steps):
    kill_when(world.popen_upgrade(), two_mns_in(world, *steps))  # two MNs listen at the kill

    resumed = world.skylift("upgrade", "resume")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert world.end_state() == expected_end_state(world)


def test_kill_while_two_mns_listen_then_rollback_leaves_the_old_release_alone(world):
    before = world.mn_version()
    kill_when(world.popen_upgrade(), two_mns_in(world, *HANDOVER))

    out = world.skylift("upgrade", "rollback", "--yes")

    assert out.returncode == 0, out.stdout + out.stderr
    version = world.mn_version()
    # the lab's 3.7.1 MN is this code in maintenance mode (docs/lab.md): as it was before
    assert (version["release"], version["mode"]) == (before["release"], before["mode"])
    assert version["pid"] != before["pid"]  # the drained one was stopped, not left beside
    assert world.mn_listeners() == 1
    assert world.live_mns() == 1
    assert world.setting("ha", "enable") == "true"
    assert world.digests() == world.before_digests


def test_kill_of_the_resume_inside_the_handover_then_resume_again(world):
    kill_when(world.popen_upgrade(), two_mns_in(world, *HANDOVER))
    kill_when(world.popen_upgrade("upgrade", "resume"),
              two_mns_in(world, "management-node/start-new-mn",
                         "management-node/stop-maintenance-mn"))

    resumed = world.skylift("upgrade", "resume")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert world.end_state() == expected_end_state(world)
