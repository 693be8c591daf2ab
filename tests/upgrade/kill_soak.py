"""kill -9 the upgrade, and then its resumes, at seeded random moments inside its steps; every
seed must end as an uninterrupted run does (or, where it rolls back, as the cloud was).

    python tests/upgrade/kill_soak.py --seeds 50 [--first 1000]     # scripts/soak-kill.sh

Each seed builds a fresh 3.7.1 lab cloud, then kills up to three times: it picks a step not
yet done, waits until the journal says that step is in flight, lets it run a random while
(0 to 1.5 s) and sends SIGKILL to the upgrade process (never to the MNs, agents or VMs it
drives). After the kills it either resumes to the end or, for some seeds and when the point
of no return was not reached, rolls back.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_single_mn import expected_end_state  # noqa: E402
from upgrade_world import World  # noqa: E402

from skylift.engine.journal import Journal  # noqa: E402
from skylift.upgrade import single_mn  # noqa: E402

STEPS = [ps.key for ps in single_mn.build_plan(False).steps()]
PONR = next(ps.key for ps in single_mn.build_plan(False).steps() if ps.step.point_of_no_return)


@dataclass
class SeedResult:
    seed: int
    kills: list[str] = field(default_factory=list)  # "step+0.42s" (what was in flight)
    ending: str = ""  # resumed | rolled back
    converged: bool = False
    detail: str = ""

    def line(self) -> str:
        mark = "ok  " if self.converged else "FAIL"
        return (f"{mark} seed {self.seed:>5}: killed in {', '.join(self.kills) or '-'}; "
                f"{self.ending}{'; ' + self.detail if self.detail else ''}")


def _journal(world: World):
    path = single_mn.journal_path(world.mn_home)
    if not path.exists():
        return None
    journal = Journal.open(path)
    journal.close()
    return journal.state


def _kill_inside(world: World, proc: subprocess.Popen, step: str, delay: float) -> str | None:
    """SIGKILL proc `delay` s after `step` is in flight, or as soon as the step is done if
    that comes first (at once if it passed unseen): a short step near the end must not let
    the run finish before the kill lands. Returns what was in flight at the kill, None when
    the process ended first."""
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        state = _journal(world)
        if state is not None and (state.in_flight == step or step in state.done):
            break
        time.sleep(0.005)
    until = time.monotonic() + delay
    while proc.poll() is None and time.monotonic() < until:
        state = _journal(world)
        if state is not None and step in state.done:
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        return None
    state = _journal(world)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return f"{(state.in_flight if state else None) or 'between steps'}+{delay:.2f}s"


def run_seed(seed: int) -> SeedResult:
    """One seeded sequence of kills on a fresh lab cloud, then the operator's way out."""
    rng = random.Random(seed)
    result = SeedResult(seed)
    world = World(f"soak{seed}")
    before = world.mn_version()
    try:
        args = world.upgrade_argv()
        for _ in range(rng.randint(1, 3)):
            state = _journal(world)
            left = [s for s in STEPS if not (state and s in state.done)]
            if not left:
                break
            proc = world.popen_upgrade(*args)
            what = _kill_inside(world, proc, rng.choice(left), rng.uniform(0.0, 1.5))
            if what is None:
                break  # it finished (or failed) before the moment came
            result.kills.append(what)
            if _journal(world) is not None:
                args = ("upgrade", "resume")
        state = _journal(world)
        may_roll_back = state is not None and state.status != "ok" and PONR not in state.done \
            and state.in_flight != PONR and PONR not in state.failed
        if may_roll_back and rng.random() < 0.3:
            result.ending = "rolled back"
            out = world.skylift("upgrade", "rollback", "--yes")
            now = world.mn_version()
            got = {"rc": out.returncode, "mn": (now["release"], now["mode"]),
                   "listeners": world.mn_listeners(), "live": world.live_mns(),
                   "ha": world.setting("ha", "enable"),
                   "inventory_same": world.digests() == world.before_digests}
            want = {"rc": 0, "mn": (before["release"], before["mode"]), "listeners": 1,
                    "live": 1, "ha": "true", "inventory_same": True}
        else:
            result.ending = "resumed"
            out = world.skylift(*args)
            got = {"rc": out.returncode, **(world.end_state() if out.returncode == 0 else {})}
            want = {"rc": 0, **expected_end_state(world)}
        result.converged = got == want
        if not result.converged:
            result.detail = json.dumps({k: got.get(k) for k in want if got.get(k) != want[k]},
                                       default=str) + " " + (out.stderr or "")[-400:]
    finally:
        from skylift.lab.installation import down

        down(world.state["name"])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50, help="how many seeds to run")
    parser.add_argument("--first", type=int, default=1000, help="the first seed")
    args = parser.parse_args()
    if not os.environ.get("SKYLIFT_HOME"):  # labs of their own, never the machine's state
        import tempfile

        os.environ["SKYLIFT_HOME"] = tempfile.mkdtemp(prefix="skylift-soak-")
    results = []
    for seed in range(args.first, args.first + args.seeds):
        results.append(run_seed(seed))
        print(results[-1].line(), flush=True)
    ok = sum(r.converged for r in results)
    kills = sum(len(r.kills) for r in results)
    print(f"{ok} of {len(results)} seeds converged ({kills} kills, "
          f"{sum(r.ending == 'rolled back' for r in results)} rolled back)")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
