"""Benchmark: what a real package install costs per node on namespace hosts.

    python3 bench/node_install.py [--hosts 3] [--part direct|upgrade-run] [--name nodeinst]
                                  [--home DIR] [--rtts 10] [--floor-nodes 3]

A lab cloud of release 3.7.1 whose N hosts are network namespaces, each with a real OpenSSH
sshd (`skylift lab up --nodes ns`: skylift.lab.installation.up, skylift.lab.ns_cloud), is
brought up; its MN is installed by `skylift install` and every host is added by
`skylift host add` over SSH, one after the other, as `lab up` does. Then, on the same nodes:

--part direct (default)
  1. host add (first install), per node, timed around skylift.install.hosts.add_host and at
     each step it reports: survey (SSH connect, os-release and package database, the "already
     added?" probe), bootstrap (download skylift-agent and python3-agent-deps from the MN's
     HTTPS repository, check size and SHA-256, unpack, install), configure (identity and
     service), start + wait (service restart, until the agent answers the MN).
  2. agent upgrade, per node: the MN's repository is given 4.3.12 (`skylift repo update` from
     the 4.3.12 OS image, as lab/artefacts.py does), then over the product's SSH pool
     (skylift.transport.ssh, the lab's client key, each node's pinned host key) the command
     line the MN's reconnect runs (mn/agent_upgrade.py NodeOps.install_and_restart):
         sh -c 'R/agent/run -m skylift.agent.packages --node-root R install skylift-agent
                4.3.12 && date +%s.%N && R/agent/run -m skylift.agent.service --node-root R
                restart'
     (the `date` in the middle splits install from restart: one fork of coreutils), then the
     agent's version is read as the MN reads it until it says 4.3.12. Nodes one at a time,
     over an SSH connection already open (its connect is a row of its own).
  3. floors, measured in the same run on the same nodes: an SSH round trip of `true` over the
     same pooled connection (median of --rtts); downloading the same two package files over
     the same HTTPS from inside the node's namespace (`ip netns exec <ns> python3`, urllib, a
     connection per file as the bootstrap does, timed inside that process) without unpacking;
     unpacking the zips (zipfile.extractall, no fsync) on the node's disk; an interpreter
     importing what the agent imports to serve, over SSH. Diagnostics (not floors): the same
     unpack with an fsync per file (what code_install does so a crash never publishes empty
     blocks), and the interpreter start of the installer (`-m skylift.agent.packages`).

--part upgrade-run
  a fresh lab as above, then the whole `skylift upgrade run --offline` to 4.3.12 (CLI, as
  tests/upgrade/test_ns_upgrade.py runs it); prints the journal's seconds per phase, the
  reconnect-agents step, and the new MN's storm ("reconnected N/M resources in S s").

Every lab is taken down at the end (`lab down`), also on failure. Needs root (ip netns).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NEW, OLD = "4.3.12", "3.7.1"
PACKAGES = ("python3-agent-deps", "skylift-agent")

# run inside a node's namespace by its python3: download the newest of each package the
# node's repository lists (or of the given version), as the bootstrap does, without unpacking
DOWNLOAD = r'''
import json, ssl, sys, time, urllib.request
root, want = sys.argv[1], sys.argv[2]
repo = json.load(open(root + "/repo.json"))
ctx = ssl.create_default_context(cafile=repo["ca"]) if repo["url"].startswith("https:") else None
where = repo["url"].rstrip("/") + "/" + repo["os"]
t0 = time.perf_counter()
with urllib.request.urlopen(where + "/repodata/index.json", timeout=60, context=ctx) as r:
    index = json.loads(r.read())
t_index = time.perf_counter() - t0
out = {"index": t_index, "files": {}}
for name in ("python3-agent-deps", "skylift-agent"):
    found = [p for p in index["packages"] if p["name"] == name
             and (want == "newest" or p["version"] == want)]
    pkg = max(found, key=lambda p: [int(x) for x in p["version"].split(".")])
    t = time.perf_counter()
    with urllib.request.urlopen(where + "/packages/" + pkg["file"], timeout=60,
                                context=ctx) as r:
        data = r.read()
    out["files"][name] = {"file": pkg["file"], "bytes": len(data),
                          "seconds": time.perf_counter() - t}
out["seconds"] = time.perf_counter() - t0
print(json.dumps(out))
'''

# unpack zips into a scratch folder on the node's disk; fsync=1: each file and folder synced
UNPACK = r'''
import json, os, shutil, sys, tempfile, time, zipfile
root, fsync, files = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
out = {}
for path in files:
    dest = tempfile.mkdtemp(prefix="bench-unpack-", dir=root + "/cache")
    try:
        t = time.perf_counter()
        with zipfile.ZipFile(path) as zf:
            if not fsync:
                zf.extractall(dest)
            else:
                dirs = {dest}
                for info in zf.infolist():
                    target = os.path.join(dest, info.filename)
                    if info.is_dir():
                        os.makedirs(target, exist_ok=True)
                        continue
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    dirs.add(os.path.dirname(target))
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    try:
                        os.write(fd, zf.read(info))
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                for d in dirs:
                    fd = os.open(d, os.O_RDONLY)
                    os.fsync(fd)
                    os.close(fd)
            members = sum(1 for i in zf.infolist() if not i.is_dir())
        out[os.path.basename(path)] = {"seconds": time.perf_counter() - t, "files": members}
    finally:
        shutil.rmtree(dest, ignore_errors=True)
print(json.dumps(out))
'''

# what the agent imports to serve (skylift.agent.server.serve and skylift.cli.agent)
AGENT_IMPORTS = ("import typer, uvicorn, skylift.cli.agent, skylift.agent.server, "
                 "skylift.agent.app")


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt(xs: list[float]) -> str:
    """median (min-max), in seconds."""
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{med(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"


def conditions() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
            f"Python {sys.version.split()[0]}")


# --- host add, timed -------------------------------------------------------------------

STEP_OF = (("surveying", "survey"), ("installing the agent's code", "bootstrap"),
           ("giving the node its identity", "configure"),
           ("giving the agent its certificate", "certificate"),
           ("starting the agent", "start + wait"))


def timed_up(spec, log) -> tuple[dict, list[dict]]:
    """lab up, with every add_host timed at the steps it reports (in order, per host)."""
    import skylift.install.hosts as hosts_mod
    from skylift.lab.installation import up

    records: list[dict] = []
    original = hosts_mod.add_host

    def add_host(req, *, home=None, on_step=lambda msg: None):
        marks = [(time.perf_counter(), "begin")]

        def step(msg: str) -> None:
            marks.append((time.perf_counter(), msg.strip()))
            on_step(msg)
        try:
            return original(req, home=home, on_step=step)
        finally:
            marks.append((time.perf_counter(), "end"))
            records.append({"name": req.name, "address": req.address, "marks": marks})

    hosts_mod.add_host = add_host
    t0 = time.perf_counter()
    try:
        state = up(spec, on_step=lambda m: log(f"[{time.perf_counter() - t0:6.1f}s] {m}"))
    finally:
        hosts_mod.add_host = original
    return state, records


def host_add_phases(rec: dict) -> dict[str, float]:
    """Seconds of each deploy step of one host add (from one mark to the next)."""
    out: dict[str, float] = {}
    marks = rec["marks"]
    for (t, msg), (t_next, _) in zip(marks, marks[1:]):
        label = next((lab for prefix, lab in STEP_OF if msg.startswith(prefix)), None)
        if label is None and msg == "begin":
            label = "before the survey (MN, inventory)"
        if label:
            out[label] = out.get(label, 0.0) + (t_next - t)
    out["host add (total)"] = marks[-1][0] - marks[0][0]
    return out


# --- the nodes, over the product's SSH -------------------------------------------------

class Nodes:
    """The lab's namespace hosts over one SshPool (the lab's client key, pinned host keys)."""

    def __init__(self, state: dict, work: Path) -> None:
        from skylift.transport.ssh import SshPool, SshTarget

        self.state = state
        self.hosts = [n for n in state["nodes"] if n.get("netns")]
        self.pool = SshPool(work / "known_hosts")
        key = Path(state["ns"]["client_key"])
        self.targets = {n["name"]: self.pool.transport(SshTarget(
            n["address"], n["ssh"]["port"], "root", key_path=key,
            host_key_fingerprint=n["ssh"]["host_key_fingerprint"])) for n in self.hosts}

    def run(self, node: dict, argv: list[str], what: str, timeout: float = 300.0) -> str:
        return self.targets[node["name"]].run(argv, timeout=timeout).check(what).stdout

    def timed(self, node: dict, argv: list[str], what: str) -> tuple[float, str]:
        t = time.perf_counter()
        out = self.run(node, argv, what)
        return time.perf_counter() - t, out

    def close(self) -> None:
        self.pool.close()


def in_ns(node: dict, script: str, *args: str) -> dict:
    done = subprocess.run(["ip", "netns", "exec", node["netns"], "/usr/bin/python3", "-c", script,
                           *args], capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"{node['name']}: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def shell_init(node: dict) -> float:
    """Seconds of what sshd's `bash -c` runs before any command on these nodes: root's
    ~/.bashrc (bash sources it for commands sshd starts); the nodes share this machine's /root."""
    t = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", node["netns"], "bash", "-c", ". ~/.bashrc"],
                   capture_output=True, timeout=60, env={**os.environ, "HOME": "/root"})
    t_shell = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", node["netns"], "bash", "-c", "true"],
                   capture_output=True, timeout=60)
    return t_shell - (time.perf_counter() - t)


def cached_files(node: dict, version: str) -> list[str]:
    """The node's cached package files of `version`, deps first."""
    cache = Path(node["node_root"]) / "cache"
    out = []
    for name in PACKAGES:
        found = sorted(cache.glob(f"{name}-{version}*"))
        found = [f for f in found if not f.name.endswith(".tmp")]
        if not found:
            raise RuntimeError(f"{node['name']}: no cached {name} {version} in {cache}")
        out.append(str(found[0]))
    return out


def floors(nodes: Nodes, version: str, rtts: int, log, count: int) -> dict[str, list[float]]:
    """Per node: SSH `true` round trip, download of both packages of `version` over HTTPS
    from inside the namespace, unpack (no fsync) of both, of the deps alone, and the same
    unpack with fsyncs; the agent's imports over SSH; the installer's interpreter start."""
    out: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(value)

    for n in nodes.hosts[:count]:
        root = n["node_root"]
        rt = [nodes.timed(n, ["true"], "true")[0] for _ in range(rtts)]
        add("ssh true", med(rt))
        add("shell init (~/.bashrc) in the namespace", med([shell_init(n) for _ in range(5)]))
        got = in_ns(n, DOWNLOAD, root, version)
        add("download both", got["seconds"])
        add("download deps", got["files"]["python3-agent-deps"]["seconds"])
        add("download bytes", sum(f["bytes"] for f in got["files"].values()))
        files = cached_files(n, version)
        plain = in_ns(n, UNPACK, root, "0", *files)
        deps, agent = (plain[os.path.basename(f)] for f in files)
        add("unpack deps", deps["seconds"])
        add("unpack both", deps["seconds"] + agent["seconds"])
        add("unpack files", deps["files"] + agent["files"])
        for f in files:  # the system's tool on the same file, into a scratch folder
            scratch = Path(tempfile.mkdtemp(prefix="bench-unzip-", dir=f"{root}/cache"))
            try:
                t = time.perf_counter()
                subprocess.run(["unzip", "-q", f, "-d", str(scratch)], check=True)
                add(f"unzip -q {'deps' if 'deps' in os.path.basename(f) else 'agent'}",
                    time.perf_counter() - t)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        add("unzip -q both", out["unzip -q deps"][-1] + out["unzip -q agent"][-1])
        synced = in_ns(n, UNPACK, root, "1", *files)
        add("unpack both + fsync", sum(v["seconds"] for v in synced.values()))
        run = f"{root}/agent/run"
        add("agent imports over ssh", med([nodes.timed(
            n, [run, "-c", AGENT_IMPORTS], "agent imports")[0] for _ in range(3)]))
        add("installer start over ssh", med([nodes.timed(
            n, [run, "-c", "import skylift.agent.packages"], "installer imports")[0]
            for _ in range(3)]))
        add("ssh `python3 -c pass` (PATH's python3)", med([nodes.timed(
            n, ["python3", "-c", "pass"], "python3")[0] for _ in range(3)]))
        add("ssh `/usr/bin/python3 -c pass`", med([nodes.timed(
            n, ["/usr/bin/python3", "-c", "pass"], "python3")[0] for _ in range(3)]))
        log(f"  floors on {n['name']}: ssh true {med(rt) * 1000:.1f} ms, download "
            f"{got['seconds']:.3f} s ({out['download bytes'][-1] / 2**20:.1f} MiB), unpack "
            f"{out['unpack both'][-1]:.3f} s, with fsync {out['unpack both + fsync'][-1]:.3f} s")
    return out


# --- the agent upgrade, as the MN's reconnect runs it ----------------------------------

def give_repo(mn_home: Path, log) -> float:
    """`skylift repo update` of the MN's repository from the 4.3.12 OS image."""
    from skylift.config import load_config
    from skylift.lab.artefacts import build_for_upgrade
    from skylift.release.keys import PUBLIC_NAME
    from skylift.repo.update import update_from_image

    t = time.perf_counter()
    arts = build_for_upgrade(mn_home)
    built = time.perf_counter() - t
    t = time.perf_counter()
    done = update_from_image(arts.image, load_config(mn_home).management_node_root(),
                             os_release="c74", trusted_keys=[str(mn_home / "keys" / PUBLIC_NAME)])
    log(f"  4.3.12 artefacts built in {built:.1f} s, repo update {time.perf_counter() - t:.1f} s"
        f" ({done.repo.release})")
    return time.perf_counter() - t


def upgrade_nodes(nodes: Nodes, log) -> dict[str, list[float]]:
    from skylift.agent.client import AgentClient
    from skylift.lab.installation import lab_trust

    trust = lab_trust(nodes.state)
    out: dict[str, list[float]] = {}
    for n in nodes.hosts:
        root = n["node_root"]
        run = f"{root}/agent/run"
        install = shlex.join([run, "-m", "skylift.agent.packages", "--node-root", root,
                              "install", "skylift-agent", NEW])
        restart = shlex.join([run, "-m", "skylift.agent.service", "--node-root", root,
                              "restart"])
        chain = f"{install} && date +%s.%N && {restart}"
        w0, t0 = time.time(), time.perf_counter()
        stdout = nodes.run(n, ["sh", "-c", chain], "install and restart")
        t1 = time.perf_counter()
        lines = stdout.strip().splitlines()
        stamp = next(float(x) for x in lines if re.fullmatch(r"\d+\.\d+", x.strip()))
        installed = json.loads(next(x for x in lines if x.startswith("{")))
        while True:
            with AgentClient(n["url"], timeout=10, trust=trust) as agent:
                version = agent.version()
            if version["agent_version"] == NEW:
                break
            if time.perf_counter() - t1 > 30:
                raise RuntimeError(f"{n['name']} answers {version['agent_version']}")
            time.sleep(0.05)
        t2 = time.perf_counter()
        for key, value in (("install (download, verify, unpack, switch)", stamp - w0),
                           ("restart (stop, start, health)", (t1 - t0) - (stamp - w0)),
                           ("answers 4.3.12 (version read)", t2 - t1),
                           ("agent upgrade (total)", t2 - t0)):
            out.setdefault(key, []).append(value)
        deps = installed.get("deps") or {}
        log(f"  upgraded {n['name']}: install {stamp - w0:.3f} s, restart "
            f"{(t1 - t0) - (stamp - w0):.3f} s, deps {deps.get('version')}, code "
            f"{(installed.get('code') or {}).get('code_digest', '')[:12]}")
    return out


def service_split(nodes: Nodes, count: int) -> dict[str, list[float]]:
    """The restart's two halves on each node, timed apart over SSH: stop, then start (which
    returns once the agent answers its health check)."""
    out: dict[str, list[float]] = {}
    for n in nodes.hosts[:count]:
        root = n["node_root"]
        for action, key in (("stop", "service stop over ssh"),
                            ("start", "service start over ssh (until health)")):
            argv = [f"{root}/agent/run", "-m", "skylift.agent.service", "--node-root", root,
                    action]
            out.setdefault(key, []).append(nodes.timed(n, argv, action)[0])
    return out


# --- parts -----------------------------------------------------------------------------

def row(step: str, xs: list[float], floor: float | None, floor_what: str) -> list[str]:
    ratio = f"{med(xs) / floor:.1f}" if floor else ""
    return [step, fmt(xs), f"{floor:.3f} ({floor_what})" if floor else floor_what, ratio]


def print_table(rows: list[list[str]]) -> None:
    print("| step | per node s, median (min-max) | floor s (what) | ratio |")
    print("|---|---:|---|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def part_direct(args, log) -> None:
    from skylift.lab.installation import LabSpec, down

    work = Path(os.environ["SKYLIFT_HOME"]) / "bench-node-install"
    work.mkdir(parents=True, exist_ok=True)
    spec = LabSpec(name=args.name, release=OLD, hosts=args.hosts, vms=0, nodes="ns")
    t = time.perf_counter()
    nodes = None
    try:
        state, records = timed_up(spec, log)
        lab_seconds = time.perf_counter() - t
        nodes = Nodes(state, work)
        n = len(nodes.hosts)
        add = {}
        for rec in records:
            for k, v in host_add_phases(rec).items():
                add.setdefault(k, []).append(v)
        connect = []
        for node in nodes.hosts:  # a new connection each: key exchange, auth, a `true`
            connect.append(nodes.timed(node, ["true"], "connect")[0])
        log("floors for the host add (3.7.1 packages)")
        f_old = floors(nodes, OLD, args.rtts, log, args.floor_nodes)
        mn_home = Path(state["mn"]["home"])
        repo_seconds = give_repo(mn_home, log)
        log("agent upgrade, one node at a time")
        upg = upgrade_nodes(nodes, log)
        log("floors for the upgrade (4.3.12 packages)")
        f_new = floors(nodes, NEW, args.rtts, log, args.floor_nodes)
        f_new.update(service_split(nodes, args.floor_nodes))
    finally:
        if nodes is not None:
            nodes.close()
        down(args.name)
    m = {k: med(v) for k, v in f_old.items()}
    mn_ = {k: med(v) for k, v in f_new.items()}
    print(f"\n{n} namespace hosts, lab {OLD} -> agent {NEW}; floors on the first "
          f"{min(n, args.floor_nodes)}; {conditions()}")
    print(f"packages: host add {m['download bytes'] / 2**20:.1f} MiB "
          f"({m['unpack files']:.0f} files), upgrade {mn_['download bytes'] / 2**20:.1f} MiB "
          f"({mn_['unpack files']:.0f} files); lab up {lab_seconds:.1f} s, "
          f"repo update {repo_seconds:.1f} s\n")
    # unpacking: the faster of the system's unzip and Python's zipfile (neither fsyncs)
    boot_floor = m["download both"] + min(m["unpack both"], m["unzip -q both"])
    inst_floor = mn_["download both"] + min(mn_["unpack both"], mn_["unzip -q both"])
    rows = [
        row("host add: before the survey (MN, inventory)",
            add.get("before the survey (MN, inventory)", []), None, ""),
        row("host add: survey (SSH connect + 1 command, agent probe)", add["survey"],
            med(connect), "SSH connect + `true`"),
        row("host add: bootstrap (download 2 packages, verify, unpack, install)",
            add["bootstrap"], boot_floor, "download both + unpack both, no fsync"),
        row("host add: configure", add["configure"], m["agent imports over ssh"],
            "ssh + agent's imports"),
        row("host add: start + wait until it answers", add["start + wait"],
            m["agent imports over ssh"], "ssh + agent's imports"),
        row("**host add (total)**", add["host add (total)"],
            med(connect) + boot_floor + m["agent imports over ssh"],
            "connect + download + unpack + imports"),
        row("upgrade: install skylift-agent 4.3.12 (+ its deps)",
            upg["install (download, verify, unpack, switch)"], inst_floor,
            "download both + unpack both, no fsync"),
        row("upgrade: restart (stop, start, health)", upg["restart (stop, start, health)"],
            mn_["agent imports over ssh"], "ssh + agent's imports"),
        row("upgrade: agent answers 4.3.12", upg["answers 4.3.12 (version read)"], None, ""),
        row("**agent upgrade (total, SSH open)**", upg["agent upgrade (total)"],
            mn_["ssh true"] + inst_floor + mn_["agent imports over ssh"],
            "ssh true + download + unpack + imports"),
    ]
    print_table(rows)
    print("\nfloors and diagnostics, per node (median (min-max)), s:")
    print("| measure | host add (3.7.1 files) | upgrade (4.3.12 files) |")
    print("|---|---:|---:|")
    print(f"| SSH connect + `true` (new connection) | {fmt(connect)} | |")
    for key in ("ssh true", "shell init (~/.bashrc) in the namespace",
                "ssh `python3 -c pass` (PATH's python3)", "ssh `/usr/bin/python3 -c pass`",
                "download both", "download deps", "unzip -q deps", "unzip -q both",
                "unpack deps", "unpack both", "unpack both + fsync", "agent imports over ssh",
                "installer start over ssh", "service stop over ssh",
                "service start over ssh (until health)"):
        print(f"| {key} | {fmt(f_old.get(key, []))} | {fmt(f_new.get(key, []))} |")
    tot_add = sum(add["host add (total)"])
    tot_upg = sum(upg["agent upgrade (total)"])
    print(f"\ntotals for {n} nodes, one after the other: host add {tot_add:.2f} s "
          f"({tot_add / n:.2f} s/node), agent upgrade {tot_upg:.2f} s "
          f"({tot_upg / n:.2f} s/node)")


def part_upgrade_run(args, log) -> None:
    from skylift.engine.journal import Journal
    from skylift.lab.artefacts import build_for_upgrade
    from skylift.lab.installation import LabSpec, down
    from skylift.upgrade import single_mn

    spec = LabSpec(name=args.name, release=OLD, hosts=args.hosts, vms=0, nodes="ns")
    try:
        state, records = timed_up(spec, log)
        mn_home = Path(state["mn"]["home"])
        t = time.perf_counter()
        arts = build_for_upgrade(mn_home)
        log(f"4.3.12 artefacts built in {time.perf_counter() - t:.1f} s; upgrading")
        env = dict(os.environ, SKYLIFT_HOME=str(mn_home), COLUMNS="200")
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "skylift.cli.main", "upgrade", "run",
                               "--offline", "--image", str(arts.image), "--installer",
                               str(arts.installer), "--tool", str(arts.tool)],
                              capture_output=True, text=True, env=env, timeout=600,
                              stdin=subprocess.DEVNULL)
        total = time.perf_counter() - t
        if done.returncode:
            raise RuntimeError(f"upgrade run failed ({done.returncode}): "
                               f"{(done.stdout + done.stderr)[-2000:]}")
        journal = Journal.open(single_mn.journal_path(mn_home))
        steps = [(r["step"], float(r.get("seconds") or 0)) for r in journal.run_records()
                 if r.get("type") == "step_done" and r.get("step")]
        journal.close()
        storms = []
        for logf in sorted((mn_home / "mn").glob("mn-*.log")):
            storms += re.findall(r"reconnected \d+/\d+ resources in [\d.]+s \([^)]*\)",
                                 logf.read_text(errors="replace"))
    finally:
        down(args.name)
    hosts = sum(1 for n in state["nodes"] if n.get("netns"))
    nodes = len(state["nodes"])
    print(f"\n`skylift upgrade run --offline` {OLD} -> {NEW}, {hosts} namespace hosts "
          f"({nodes} agents with storages and vRouters), no VMs; {conditions()}")
    print(f"whole run {total:.1f} s (CLI process)\n")
    phases: dict[str, float] = {}
    for step, s in steps:
        phases[step.split("/")[0]] = phases.get(step.split("/")[0], 0.0) + s
    print("| phase | s |")
    print("|---|---:|")
    for p, s in phases.items():
        print(f"| {p} | {s:.1f} |")
    print()
    for step, s in steps:
        if step.split("/")[0] in ("reconnect", "management-node") or "agent" in step:
            print(f"step {step}: {s:.2f} s")
    for line in storms:
        print(f"MN storm: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3,
                        help="namespace hosts (at most what one lab network holds)")
    parser.add_argument("--part", choices=("direct", "upgrade-run"), default="direct")
    parser.add_argument("--name", default="nodeinst", help="the lab's name (its block)")
    parser.add_argument("--home", help="state folder to keep (default: a temporary one)")
    parser.add_argument("--rtts", type=int, default=10, help="SSH `true` round trips per node")
    parser.add_argument("--floor-nodes", type=int, default=3,
                        help="measure the floors on the first K hosts (keeps 8 hosts short)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("namespace hosts need root (ip netns)")

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="skylift-bench-ni-") as tmp:
        os.environ["SKYLIFT_HOME"] = args.home or tmp
        t = time.perf_counter()
        (part_direct if args.part == "direct" else part_upgrade_run)(args, log)
        print(f"\nbench wall time {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
