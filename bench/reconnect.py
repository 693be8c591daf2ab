"""Benchmark: reconnect + agent upgrade of N farm hosts by the ConnectionManager, against the
same push-and-restart done by Ansible (the old product's tool for it).

    python3 bench/reconnect.py [--sizes 100,1000,10000] [--connect-only-sizes 10000]
                               [--self-upgrade-sizes 1000,10000]
                               [--ansible-hosts 200] [--forks 50] [--base /dev/shm/skylift-bench]
                               [--mn-loop asyncio|uvloop] [--tls both|on|off]

Each size gets a fresh 4.3.12 inventory whose hosts (and VPC vRouters) are farm hosts running
agent 3.7.1; the MN's repo carries skylift-agent 4.3.12. The ConnectionManager connects every
node, pushes the new agent over SSH (asyncssh pool) and restarts it; a size counts only when
every node then reports 4.3.12. "connect only" rows are the same storm with agents already
current (HTTP only). Ansible runs `-m raw` with the same two commands over OpenSSH against
its own farm. The farm lives under /dev/shm so fsyncs of thousands of package databases on
one disk do not stand in for the per-host disks of a real fleet. Each skylift row also
reports the CPU spent per node by the MN side (this process) and by the farm.

With --tls both (the default) every skylift row runs twice in the same run: over plain HTTP
(agents without certificates) and with the cloud's CA (skylift.pki). A TLS upgrade row gives
every old agent its certificate over SSH and reads it back over mutual TLS; a TLS connect-only
row reconnects agents deployed with certificates. The last column is TLS time / plain time.

"self-upgrade" rows (mutual TLS only) are the rollout of a hotfix build (4.3.12.1) to agents
of 4.3.12, which upgrade themselves: the MN sends each one authenticated order
(POST /v1/agent/upgrade, skylift.agent.self_upgrade) and waits for it to come back at the
new build; no SSH. Ansible's row is the same per-host work (install, restart) over OpenSSH.

Last, the floor of the same run: the CPU one mutual-TLS handshake costs each side (the
cloud's own contexts, in memory), and each self-upgrade row's MN CPU as a multiple of the
handshakes its storm made per node (counted: connections the MN opened to agents; an agent
that hands its socket over is reached once, one that restarts twice).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from skylift.db.engine import Database
from skylift.errors import SkyliftError
from skylift.lab.farm import start_farm, stop_farm
from skylift.lab.rollout import (NODE_ROOT, point_at_farm, reconnect_farm, seed_for_farm,
                                 write_mn_repo)
from skylift.mn.agent_pool import AgentPool
from skylift.pki.trust import AgentTrust

# what an MN process has loaded before any storm: no import is counted as a node's CPU
import skylift.mn.connections  # noqa: F401
import skylift.transport.ssh  # noqa: F401

NEW, OLD = "4.3.12", "3.7.1"
HOTFIX = "4.3.12.1"  # a build of the newest release's agent, for agents that upgrade themselves


def setup() -> None:
    """ansible-core and the OpenSSH client, installed when missing."""
    if shutil.which("ssh") is None:
        subprocess.run(["apt-get", "install", "-y", "openssh-client"], check=True)
    # pip puts ansible's scripts beside this interpreter (a venv's bin, often not on PATH)
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                          os.environ.get("PATH", "")])
    if shutil.which("ansible") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "ansible-core"], check=True)


async def versions(farm, trust=None) -> dict[str, int]:
    """How many agents report each version, read as the MN reads them (its pools, its trust)."""
    pool = AgentPool(max_concurrency=200, timeout=30.0, token=None, trust=trust)
    pool.open()
    sem = asyncio.Semaphore(200)

    async def one(addr):
        async with sem:
            agent = pool.client(addr, addr, lambda: farm.url(addr))
            try:
                return (await agent.version())["agent_version"]
            except SkyliftError as exc:
                return type(exc).__name__
    try:
        out: dict[str, int] = {}
        for v in await asyncio.gather(*(one(a) for a in farm.addresses)):
            out[v] = out.get(v, 0) + 1
        return out
    finally:
        await pool.close()


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_storm(coro, mn_loop: str):
    """Run the storm on the loop the MN would run it on (asyncio, or uvloop to show what the
    MN server would gain from it)."""
    if mn_loop == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def skylift_run(n: int, base: Path, upgrade: bool, mn_loop: str = "asyncio",
                tls: bool = False, self_upgrade: bool = False) -> dict:
    kind = "self" if self_upgrade else "up" if upgrade else "conn"
    work = base / f"cm-{n}-{kind}-{'tls' if tls else 'plain'}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = Database.from_string(f"sqlite:///{work / 'cloud.db'}")
    trust = AgentTrust.of_home(work / "mn-home") if tls else None
    old = upgrade and not self_upgrade  # agents of a release before TLS, upgraded over SSH
    nodes = seed_for_farm(db, n, agent_version=OLD if old else NEW)
    # an old release's agents have no certificate (the storm gives them theirs); current
    # agents were deployed with one
    farm = start_farm(len(nodes), base_dir=work / "farm", agent_port=0, ssh_port=0,
                      release=OLD if old else NEW, first_address="127.80.0.1",
                      uuids=[u for u, _ in nodes], roles=[r for _, r in nodes],
                      pki_dir=trust.ca.folder if trust and not old else None)
    want = HOTFIX if self_upgrade else NEW
    try:
        point_at_farm(db, farm, nodes)
        rss = farm.rss_bytes()
        repo = write_mn_repo(work / "mn", agent_build=HOTFIX if self_upgrade else None)
        cpu = cpu_seconds(), cpu_seconds(farm.pid)
        # a self-upgrade storm has no SSH at all: an agent not upgrading itself fails the row
        report = run_storm(reconnect_farm(db, farm, repo, trust=trust,
                                          over_ssh=not self_upgrade), mn_loop)
        mn_cpu, farm_cpu = cpu_seconds() - cpu[0], cpu_seconds(farm.pid) - cpu[1]
        seen = asyncio.run(versions(farm, trust))
        pinned = sum(trust.pinned(a) for a in farm.addresses) if trust else len(nodes)
    finally:
        stop_farm(farm)
        shutil.rmtree(work, ignore_errors=True)
    ok = seen == {want: len(nodes)} and not report.failures and pinned == len(nodes)
    if not ok:
        print(seen, report.failures, pinned, file=sys.stderr)
    tool = ("skylift (self-upgrade)" if self_upgrade else "skylift" if upgrade
            else "skylift (connect only)")
    tool += " [mutual TLS]" if tls else " [plain HTTP]"
    tool += " [MN loop: uvloop]" if mn_loop == "uvloop" else ""
    return {"tool": tool, "hosts": len(nodes), "tls": tls, "upgrade": upgrade,
            "seconds": report.seconds, "ok": ok, "farm_rss_mib": rss / 2**20,
            "upgraded": report.agents_upgraded, "failed": report.failed,
            "connections_per_node": report.agent_connections / len(nodes),
            # CPU per node on each side (the storm plus closing the pools)
            "mn_cpu_ms": round(1000 * mn_cpu / len(nodes), 2),
            "farm_cpu_ms": round(1000 * farm_cpu / len(nodes), 2)}


def handshake_floor(base: Path, n: int = 500) -> dict:
    """CPU of one mutual-TLS handshake on each side, the cloud's own contexts (the MN's client
    context, an agent's server context), run in memory: no socket, no HTTP, no event loop
    (bench/tls_stacks.py)."""
    from tls_stacks import cloud_tls, stdlib_floor

    work = base / "floor"
    shutil.rmtree(work, ignore_errors=True)
    try:
        trust, _, server = cloud_tls(work)
        protocol: list[str] = []
        mn_ms, agent_ms = stdlib_floor(trust, server, n, protocol)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"mn_ms": mn_ms, "agent_ms": agent_ms, "protocol": protocol[0]}


def ansible_run(n: int, base: Path, forks: int) -> dict:
    work = base / f"ansible-{n}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    farm = start_farm(n, base_dir=work / "farm", agent_port=0, ssh_port=0, release=OLD,
                      first_address="127.81.0.1")
    try:
        inv = work / "hosts.ini"
        inv.write_text("[farm]\n" + "".join(f"{a}\n" for a in farm.addresses) + "\n[farm:vars]\n"
                       f"ansible_port={farm.ssh_port}\nansible_user=root\n"
                       f"ansible_ssh_private_key_file={farm.client_key}\n"
                       f"ansible_ssh_common_args='-o UserKnownHostsFile={farm.known_hosts} "
                       "-o StrictHostKeyChecking=yes'\n")
        command = (f"python3 -m skylift.agent.packages --node-root {NODE_ROOT} install "
                   f"skylift-agent {NEW} && systemctl restart skylift-agent")
        env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True",
               "ANSIBLE_LOCAL_TEMP": str(work / "tmp"), "ANSIBLE_SSH_CONTROL_PATH_DIR":
               str(work / "cp"), "ANSIBLE_PYTHON_INTERPRETER": "auto_silent"}
        started = time.perf_counter()
        done = subprocess.run(["ansible", "farm", "-i", str(inv), "-m", "raw", "-a", command,
                               "-f", str(forks)], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        seen = asyncio.run(versions(farm))
    finally:
        stop_farm(farm)
    ok = done.returncode == 0 and seen == {NEW: n}
    if not ok:
        print(done.stdout[-2000:], done.stderr[-2000:], seen, file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    return {"tool": f"ansible-core -m raw (forks={forks})", "hosts": n, "seconds": seconds,
            "ok": ok}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--connect-only-sizes", default="10000")
    parser.add_argument("--self-upgrade-sizes", default="1000,10000",
                        help="rows of agents upgrading themselves (mutual TLS, no SSH)")
    parser.add_argument("--ansible-hosts", type=int, default=200)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--mn-loop", choices=("asyncio", "uvloop"), default="uvloop",
                        help="the event loop of the MN side (the MN server runs uvloop when installed)")
    parser.add_argument("--base", type=Path, default=Path("/dev/shm/skylift-bench"))
    parser.add_argument("--tls", choices=("both", "on", "off"), default="both",
                        help="skylift rows over plain HTTP, mutual TLS, or both (a ratio)")
    args = parser.parse_args()
    setup()
    os.environ.setdefault("SKYLIFT_HOME", str(args.base / "home"))
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.tls]
    rows = []
    if args.ansible_hosts:
        rows.append(ansible_run(args.ansible_hosts, args.base, args.forks))
        print(rows[-1], file=sys.stderr)
    for upgrade, sizes in ((True, args.sizes), (False, args.connect_only_sizes)):
        for n in [int(x) for x in sizes.split(",") if x]:
            for tls in modes:
                rows.append(skylift_run(n, args.base, upgrade=upgrade, mn_loop=args.mn_loop,
                                        tls=tls))
                print(rows[-1], file=sys.stderr)
    for n in [int(x) for x in args.self_upgrade_sizes.split(",") if x]:
        rows.append(skylift_run(n, args.base, upgrade=True, mn_loop=args.mn_loop, tls=True,
                                self_upgrade=True))
        print(rows[-1], file=sys.stderr)
    ansible_rate = next((r["hosts"] / r["seconds"] for r in rows if r["tool"].startswith("ansible")),
                        None)
    plain = {(r["hosts"], r["upgrade"]): r["seconds"] for r in rows
             if "tls" in r and not r["tls"]}  # a self-upgrade row has no plain twin
    print(f"{'tool':62} {'hosts':>6} {'seconds':>8} {'hosts/s':>8} {'vs ansible':>10} "
          f"{'TLS/plain':>9} {'MN CPU/node':>11} {'farm CPU/node':>13} ok")
    for r in rows:
        rate = r["hosts"] / r["seconds"]
        ratio = f"{rate / ansible_rate:.1f}x" if ansible_rate else "-"
        base = (plain.get((r["hosts"], r.get("upgrade"))) if r.get("tls")
                and "self-upgrade" not in r["tool"] else None)
        vs_plain = f"{r['seconds'] / base:.2f}" if base else "-"
        cpu = (f"{r['mn_cpu_ms']:.1f} ms", f"{r['farm_cpu_ms']:.1f} ms") if "mn_cpu_ms" in r \
            else ("-", "-")
        print(f"{r['tool']:62} {r['hosts']:>6} {r['seconds']:>8.1f} {rate:>8.1f} {ratio:>10} "
              f"{vs_plain:>9} {cpu[0]:>11} {cpu[1]:>13} {'yes' if r['ok'] else 'NO'}")
    floor = handshake_floor(args.base)
    print(f"\nTLS handshake floor ({floor['protocol']}, mutual, in memory): MN "
          f"{floor['mn_ms']:.2f} ms, agent {floor['agent_ms']:.2f} ms of CPU per handshake")
    for r in rows:
        if "self-upgrade" in r["tool"]:
            per_node = r["connections_per_node"]
            mn_floor, agent_floor = per_node * floor["mn_ms"], per_node * floor["agent_ms"]
            print(f"  {r['tool']} at {r['hosts']} hosts: {per_node:.2f} TLS connections per "
                  f"node; MN CPU {r['mn_cpu_ms']:.1f} ms = {r['mn_cpu_ms'] / mn_floor:.1f}x "
                  f"its floor ({mn_floor:.2f} ms), farm {r['farm_cpu_ms']:.1f} ms = "
                  f"{r['farm_cpu_ms'] / agent_floor:.1f}x its floor ({agent_floor:.2f} ms)")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
