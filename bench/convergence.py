"""Benchmark: returning hosts during an upgrade — how soon after they come back the run ends.

    python bench/convergence.py [--hosts 2000] [--share 20] [--outage 30] [--vms 2000]
                                [--db sqlite|mysql://root@127.0.0.1:3306/]

Two upgrades of the same lab cloud (3.7.1 -> 4.3.12, hosts served by the farm, simulated
VMs): the floor, with every host reachable; then the same with `--share` % of the hosts cut
off (packets to them dropped, nftables) from the moment the new MN starts, for `--outage`
seconds. Prints the total time of each run, the time from the hosts' return to the end of
the wait for the agents (the goal: a few seconds, not the MN's 60 s ping round), and whether
each run's proof held.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from skylift.db.engine import Database, create_database, drop_database
from skylift.engine.events import EventBus, StepStarted
from skylift.engine.journal import Journal
from skylift.lab import cutoff
from skylift.lab.artefacts import build_for_upgrade
from skylift.lab.installation import LabSpec, down, up
from skylift.upgrade import single_mn
from skylift.upgrade.context import UpgradeContext
from skylift.upgrade.run_state import RunState

NEW_MN = "management-node/start-new-mn"
RECONNECT = "reconnect/reconnect-agents"


def step_done_ts(home: Path, key: str) -> float:
    journal = Journal.open(single_mn.journal_path(home))
    try:
        return next(r["ts"] for r in journal.run_records()
                    if r.get("type") == "step_done" and r.get("step") == key)
    finally:
        journal.close()


def run_one(name: str, hosts: int, vms: int, db_url: str | None, share: float,
            outage: float) -> dict:
    state = up(LabSpec(name=name, release="3.7.1", hosts=hosts, vms=vms, driver="sim",
                       farm=True, db_url=db_url, agent_port=0),
               on_step=lambda m: print(f"  {m}", file=sys.stderr))
    try:
        home = Path(state["mn"]["home"])
        ctx = UpgradeContext.on_machine(home, artefacts=build_for_upgrade(home))
        ctx.stall_seconds = max(120.0, outage * 2)
        cut = cutoff.pick_hosts(name, share=share) if share else []
        returned: dict[str, float] = {}

        def outage_then_return() -> None:
            cutoff.cut_off(name, cut)
            time.sleep(outage)
            cutoff.restore(name)
            returned["at"] = time.time()

        bus = EventBus()

        def on_event(event) -> None:
            if cut and isinstance(event, StepStarted) and event.step == NEW_MN:
                threading.Thread(target=outage_then_return, daemon=True).start()

        bus.subscribe(on_event)
        label = f"{len(cut)} of {hosts} hosts cut off for {outage:g} s" if cut else "none cut"
        print(f"  upgrading ({label})", file=sys.stderr)
        started = time.perf_counter()
        result, _ = single_mn.run(ctx, incremental=False, events=bus)
        total = time.perf_counter() - started
        proof = RunState(single_mn.run_dir(home)).get("proof", {})
        after_return = (step_done_ts(home, RECONNECT) - returned["at"]) if cut else None
        return {"label": label, "cut": len(cut), "total": total, "after_return": after_return,
                "verdict": proof.get("verdict"), "returned_in_run": bool(returned)}
    finally:
        down(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--share", type=float, default=20.0, help="percent of hosts cut off")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds they stay away")
    parser.add_argument("--db", default="sqlite", help="sqlite, or a MariaDB server URL")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKYLIFT_HOME"] = tmp
        for i, share in enumerate((0.0, args.share)):
            db_url, db = None, None
            if args.db != "sqlite":
                server = Database.from_string(args.db)
                drop_database(server.with_name(f"skylift_bench_conv{i}"))
                db = create_database(server, f"skylift_bench_conv{i}")
                db_url = db.url_without_password()
            try:
                rows.append(run_one(f"benchconv{i}", args.hosts, args.vms, db_url, share,
                                    args.outage))
            finally:
                if db is not None:
                    drop_database(db)
    floor = rows[0]["total"]
    print(f"| run | upgrade s | vs none cut | from their return to all converged s | proof |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        back = f"{r['after_return']:.1f}" if r["after_return"] is not None else "—"
        print(f"| {r['label']} | {r['total']:.1f} | {r['total'] / floor:.2f}x | {back} "
              f"| {r['verdict']} |")


if __name__ == "__main__":
    main()
