"""Benchmark: the whole single-MN upgrade of a lab cloud of 1,000 hosts and 10,000 VMs.

    python bench/upgrade_e2e.py [--releases 3.2.0,3.7.1] [--hosts 1000] [--vms 10000]
                                [--db mysql://root@127.0.0.1:3306/] [--probe-round 5]

For each starting release: a lab on MariaDB (hosts served by the host farm, VMs held by the
simulated hypervisor), the 4.3.12 artefacts built and signed, probes on the MN API (every
0.1 s) and on every VM (rounds), then `skylift upgrade run --offline`. Prints total seconds,
the window in which the MN API was in maintenance (drain of the old MN to the new MN
serving, from the journal), the database migration time, VM probes sent/lost, and seconds
per phase. The floor for the API window is the migration itself.

The VM probes are paced: every VM once per --probe-round seconds (5 s: 2,000 probes a second
for 10,000 VMs, the density of the run issue 16 was filed with). --probe-round 0 probes as fast
as the machine allows, as the rounds of 2026-12-03/04 did; such probes take whatever CPU the
upgrade frees, so they hide its gains. The longest time any VM went without an answer is
printed: the resolution at which "0 lost" was measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from skylift.db.engine import Database, create_database, drop_database
from skylift.engine.events import EventBus
from skylift.engine.journal import Journal
from skylift.lab.artefacts import build_for_upgrade
from skylift.lab.demo import PROBE_PATH
from skylift.lab.installation import LabSpec, down, up
from skylift.lab.probe_process import ProbesProcess
from skylift.lab.probes import report_when_finished, vm_targets
from skylift.upgrade import single_mn
from skylift.upgrade.report import maintenance_window
from skylift.upgrade.context import UpgradeContext
from skylift.upgrade.run_state import RunState


def phase_seconds(journal: Journal) -> dict[str, float]:
    """Seconds per phase, from the journal's step records."""
    out: dict[str, float] = {}
    for rec in journal.run_records():
        if rec.get("type") == "step_done" and rec.get("step"):
            phase = rec["step"].split("/")[0]
            out[phase] = out.get(phase, 0.0) + float(rec.get("seconds") or 0.0)
    return out


# who spends the machine's CPU during the upgrade, by command line
CPU_GROUPS = (("host farm", "skylift.lab.farm_server"),
              ("sim hypervisor", "hypervisor.simd"), ("MNs", "skylift.mn serve"),
              ("MariaDB", "mariadbd"))


def cpu_by_group() -> dict[str, float]:
    """CPU seconds (user + system) used so far by the live processes of each group."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {name: 0.0 for name, _ in CPU_GROUPS}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        for name, needle in CPU_GROUPS:
            if needle in argv:
                out[name] += (int(fields[11]) + int(fields[12])) / tick
                break
    return out


def step_seconds(journal: Journal, key: str) -> float:
    return next((float(r.get("seconds") or 0) for r in journal.run_records()
                 if r.get("type") == "step_done" and r.get("step") == key), 0.0)


def run_one(release: str, hosts: int, vms: int, server: str, probe_round: float) -> dict:
    server_db = Database.from_string(server)
    db_name = f"skylift_bench_e2e_{release.replace('.', '')}"
    drop_database(server_db.with_name(db_name))  # a run cut short may have left it
    db = create_database(server_db, db_name)
    name = f"bench{release.replace('.', '')}"
    t0 = time.perf_counter()
    state = up(LabSpec(name=name, release=release, hosts=hosts, vms=vms, driver="sim",
                       db_url=db.url_without_password(), agent_port=0),
               on_step=lambda m: print(f"  {m}", file=sys.stderr))
    lab_seconds = time.perf_counter() - t0
    try:
        mn_home = Path(state["mn"]["home"])
        arts = build_for_upgrade(mn_home)
        ctx = UpgradeContext.on_machine(mn_home, artefacts=arts)
        agent_urls = [n["url"] for n in state["nodes"] if n["kind"] == "host"]
        # the probes sample from a process of their own, as an outside watcher would
        probes = ProbesProcess(mn_home / "probes", api_url=ctx.mn_url, api_path=PROBE_PATH,
                        token=ctx.mn_token, vms=vm_targets(agent_urls, trust=ctx.agent_trust),
                        vm_interval=probe_round,
                        concurrency=64).start()
        bus = EventBus()
        report_when_finished(probes, bus)
        print(f"  upgrading {release} -> 4.3.12", file=sys.stderr)
        cpu0, own0 = cpu_by_group(), os.times()
        result, _ = single_mn.run(ctx, incremental=False, events=bus)
        cpu = {k: v - cpu0.get(k, 0.0) for k, v in cpu_by_group().items()}
        own = os.times()
        cpu["upgrade tool"] = (own.user - own0.user) + (own.system - own0.system)
        probes.stop()
        cpu["VM and API probes"] = probes.cpu_seconds or 0.0  # the whole time they ran
        journal = Journal.open(single_mn.journal_path(mn_home))
        phases = phase_seconds(journal)
        window = maintenance_window(journal, single_mn.build_plan(False))
        migrate = step_seconds(journal, "management-node/migrate-database")
        steps = {r["step"]: float(r.get("seconds") or 0) for r in journal.run_records()
                 if r.get("type") == "step_done" and r.get("step", "").split("/")[0]
                 in ("protect", "management-node", "verify")}
        journal.close()
        p, proof = probes.stop().to_dict(), RunState(single_mn.run_dir(mn_home)).get("proof", {})
        return {"release": release, "hosts": hosts, "vms": vms, "lab": lab_seconds,
                "total": result.seconds, "window": window, "migrate": migrate,
                "api": p.get("api_results"), "vm_sent": p.get("vm_probes_sent"),
                "vm_lost": p.get("vm_probes_lost"), "vm_gap": p.get("vm_longest_gap_seconds"),
                "probe_seconds": p.get("seconds"), "proof": proof.get("ok"), "phases": phases, "steps": steps, "cpu": cpu}
    finally:
        down(name)
        if not os.environ.get("SKYLIFT_BENCH_KEEP"):
            drop_database(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", default="3.2.0,3.7.1")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=10000)
    parser.add_argument("--db", default="mysql://root@127.0.0.1:3306/")
    parser.add_argument("--home", help="state folder to keep (default: a temporary one)")
    parser.add_argument("--probe-round", type=float, default=5.0,
                        help="seconds per round of VM probes (0: as fast as the machine allows)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SKYLIFT_HOME"] = args.home or tmp
        rows = [run_one(r, args.hosts, args.vms, args.db, args.probe_round) for r in args.releases.split(",")]
    print("| from | hosts | VMs | upgrade s | API in maintenance s | of which migration s "
          "| API answers | VM probes sent / lost | VM probes/s | longest VM gap s | proof |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['release']} | {r['hosts']:,} | {r['vms']:,} | {r['total']:.1f} "
              f"| {r['window']:.1f} | {r['migrate']:.2f} | {r['api']} "
              f"| {r['vm_sent']:,} / {r['vm_lost']} | {r['vm_sent'] / r['probe_seconds']:,.0f} "
              f"| {r['vm_gap']:.1f} | {'ok' if r['proof'] else 'FAILED'} |")
    print()
    print("| from | " + " | ".join(rows[0]["phases"]) + " |")
    print("|---|" + "---:|" * len(rows[0]["phases"]))
    for r in rows:
        print(f"| {r['release']} | " + " | ".join(f"{v:.1f}" for v in r["phases"].values())
              + " |")

    print()
    print("| from | CPU s by group (live processes; " + f"{os.cpu_count()} cores) | "
          + " | ".join(rows[0]["cpu"]) + " | all | of cores x wall |")
    print("|---|---|" + "---:|" * (len(rows[0]["cpu"]) + 2))
    for r in rows:
        used = sum(r["cpu"].values())
        print(f"| {r['release']} | | " + " | ".join(f"{v:.1f}" for v in r["cpu"].values())
              + f" | {used:.1f} | {used / (os.cpu_count() * r['total']):.0%} |")
    print()
    print("| from | step | s |")
    print("|---|---|---:|")
    for r in rows:
        for step, seconds in r["steps"].items():
            print(f"| {r['release']} | {step} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
