"""Benchmark: failover of the HA cloud's VIP holder, again and again, on a cloud of 1,000 hosts.

    python3 bench/ha_failover.py [--failovers 10] [--hosts 1000] [--vms 2000]
                                 [--name ha-bench] [--home DIR] [--keep]

A 4.3.12 HA cloud is built (`skylift lab up --mns 3 --hosts N --vms M`: three MNs in
namespaces, each on its own Galera member, sharing the hosts, behind a keepalived VIP; the
hosts served by the host farm). Then, --failovers times: the node holding the VIP dies
(every process in it killed with SIGKILL and its link taken down, as a power cut would:
skylift.lab.failover.failover) while a writer creates zones through the VIP and the API and
every VM are probed; once the surviving MNs drive every host, the node boots again
(skylift.lab.failover.rejoin: sshd, its Galera member — IST —, its MN, keepalived) and the
next round kills whichever node holds the VIP then.

Per round: VIP move (kill -> exactly one surviving node carries the VIP), API back (kill ->
the first 200 on the VIP, polled every 20 ms with 1 s timeouts: a try in flight when the VIP
moves waits out its timeout), refused connections seen by a 50 ms API prober, writes acknowledged
and lost (every acknowledged zone must exist afterwards), host takeover (kill -> the
surviving MNs, asked at their own addresses, are the live members and drive every resource,
all connected), VM probes lost and VMs restarted (boot id changed), then the rejoin: Galera
(how and how long), hosts back, and whether the VIP moved back (it must not: nopreempt).

The floor beside the VIP move is keepalived's own: a backup declares the master dead
master_down_interval = 3 x advert_int + skew after the last advert it heard, skew =
(256 - its priority) / 256 x advert_int. The last advert came 0..advert_int before the
kill, so a move measured from the kill lies in [floor - advert_int, floor] plus the time to
see it (20 ms polling). Results go to docs/benchmarks.md by hand, with this command.
Needs root. The lab is taken down at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def fmt(xs: list[float]) -> str:
    if not xs:
        return "-"
    return (f"{statistics.median(xs):.2f} (min {min(xs):.2f}, max {max(xs):.2f})"
            if len(xs) > 1 else f"{xs[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failovers", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--name", default="ha-bench", help="the lab's name (its block)")
    parser.add_argument("--home", help="state folder to keep (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    args = parser.parse_args()
    if args.failovers < 1 or args.hosts < 1:
        parser.error("--failovers and --hosts are at least 1")
    home = Path(args.home or tempfile.mkdtemp(prefix="skylift-bench-ha-"))
    os.environ["SKYLIFT_HOME"] = str(home)

    from skylift.ha.keepalived import TOP_PRIORITY, PRIORITY_STEP
    from skylift.lab import failover, ha_lab
    from skylift.lab.installation import LabSpec, down, up

    def log(msg: str) -> None:
        print(f"· {msg}", file=sys.stderr, flush=True)

    down(args.name)
    t = time.monotonic()
    state = up(LabSpec(name=args.name, release="4.3.12", hosts=args.hosts, vms=args.vms, mns=3,
                       agent_port=0), on_step=log)
    log(f"lab up in {time.monotonic() - t:.1f} s: {len(state['nodes'])} resources, "
        f"{len(state['vms'])} running VMs; Galera start {state['ha']['galera_start']}")
    spec = ha_lab.vip_spec(state)
    rounds = []
    try:
        token, verify = failover._access(state)
        failover._wait("every host driven", lambda: failover.drive_all(
            state, [m["name"] for m in state["ha"]["mns"]], token, verify), 600, 1.0)
        for k in range(1, args.failovers + 1):
            got = failover.failover(state, home / f"probes-{k}", timeout=300)
            address = next(m["address"] for m in state["ha"]["mns"]
                           if m["name"] == got["new_holder"])
            prio = spec.priority_of(address)
            got["floor_s"] = 3 * spec.advert_int + (256 - prio) / 256 * spec.advert_int
            back = failover.rejoin(state, got["victim"], timeout=600)
            got.update({f"rejoin_{key}": value for key, value in back.items()})
            rounds.append(got)
            log(f"round {k}: {json.dumps(got)}")
    finally:
        if not args.keep:
            down(args.name)
    print(f"\nHA failover of the VIP holder, 3 MNs, {len(state['nodes'])} resources "
          f"({args.hosts} farm hosts), {len(state['vms'])} VMs, {len(rounds)} rounds; "
          f"advert_int {spec.advert_int} s, priorities {TOP_PRIORITY}, "
          f"{TOP_PRIORITY - PRIORITY_STEP}, {TOP_PRIORITY - 2 * PRIORITY_STEP}; "
          f"{os.cpu_count()} cores")
    rows = [
        ("VIP move (kill -> one survivor holds it)", [r["vip_move_s"] for r in rounds]),
        ("  keepalived floor 3 x advert + skew", [r["floor_s"] for r in rounds]),
        ("API back on the VIP (kill -> first 200)", [r["api_back_s"] for r in rounds]),
        ("host takeover (kill -> all driven, connected)", [r["host_takeover_s"] for r in rounds]),
        ("rejoin: Galera member Synced", [r["rejoin_galera_s"] for r in rounds]),
        ("rejoin: MN started", [r["rejoin_mn_s"] for r in rounds]),
        ("rejoin: hosts shared out again", [r["rejoin_hosts_back_s"] for r in rounds]),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"| {'what (seconds)'.ljust(width)} | median (min, max) |")
    print(f"|{'-' * (width + 2)}|-------------------|")
    for name, xs in rows:
        print(f"| {name.ljust(width)} | {fmt(xs)} |")
    ratio = [r["vip_move_s"] / r["floor_s"] for r in rounds]
    print(f"\nVIP move / keepalived floor: {fmt(ratio)}")
    print(f"writes acknowledged {sum(r['writes_acked'] for r in rounds)}, "
          f"lost {sum(r['writes_lost'] for r in rounds)}; "
          f"refused connections on the VIP {sum(r['api_refused'] for r in rounds)}; "
          f"VM probes {sum(r['vm_probes_sent'] for r in rounds)}, "
          f"lost {sum(r['vm_probes_lost'] for r in rounds)}; "
          f"VMs restarted {sum(r['vm_restarts'] for r in rounds)}; "
          f"rejoins by {sorted({r['rejoin_transfer'] for r in rounds})}; "
          f"VIP moved back on a rejoin: "
          f"{sum(r['rejoin_vip_holders_seen'] != [r['new_holder']] for r in rounds)} times")


if __name__ == "__main__":
    main()
