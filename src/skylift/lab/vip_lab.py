"""The VIP of a multi-MN cloud on lab namespace nodes: keepalived per node, who holds the VIP.

    spec = VipSpec(vip="198.18.94.100", mn_addresses=[n.address for n in nodes], ca=ca_pem)
    kas = start_vip(net, nodes, spec)            # keepalived in each node, config checked first
    holder, seconds = wait_for_holder(nodes, spec.vip, timeout=10)
    kill_keepalived(kas[0])                      # a crash: SIGKILL, the VIP address stays behind
    stop_keepalived(kas[1])                      # SIGTERM: keepalived gives the VIP up itself
    vip_holders(nodes, spec.vip)                 # every node whose eth0 carries the VIP now
    net.remove()                                 # ends every keepalived inside the namespaces

Each node's keepalived runs as `ip netns exec <ns> keepalived -n -l -D -G -P -f CONF -p PID
-r VRRP_PID` in a session of its own: in the foreground (-n: the Popen's pid is keepalived's
parent process, its VRRP child is forked from it), logging to its log file (-l, -D; -G: no
syslog, the container has none), VRRP only (-P: no checker process, the health check is a
vrrp_script). Its files are in base_dir/<node>-keepalived/ (0700): keepalived.conf (0600,
rendered by skylift.ha.keepalived and checked with `keepalived -t` inside the namespace
before it starts), the pid files and keepalived.log.

The VIP is seen where it is: an address on a node's interface (`ip -n <ns> -j addr`). After
a crash of keepalived (SIGKILL) the address stays on that node's interface, as it does on a
real machine whose keepalived is killed; keepalived removes it when it starts there again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from skylift.files import write_atomic
from skylift.ha.keepalived import VipSpec, config_test, keepalived_path, render
from skylift.lab.errors import LabError
from skylift.lab.netns import LabNetwork, NsNode
from skylift.processes import ProcessId, parent_pid, stop

START_TIMEOUT = 10.0


@dataclass
class NodeKeepalived:
    """One node's keepalived: the parent process by identity and its files."""

    node: NsNode
    folder: Path
    pid: int
    start: int

    @property
    def conf(self) -> Path:
        return self.folder / "keepalived.conf"

    @property
    def log(self) -> Path:
        return self.folder / "keepalived.log"

    @property
    def ident(self) -> ProcessId:
        return ProcessId(self.pid, self.start)

    def alive(self) -> bool:
        return self.ident.alive()

    def processes(self) -> list[ProcessId]:
        """The parent and its children (the VRRP process, health checks running now)."""
        if not self.alive():
            return []
        kids = [p for entry in os.scandir("/proc") if entry.name.isdigit()
                and parent_pid(int(entry.name)) == self.pid
                and (p := ProcessId.of(int(entry.name))) is not None]
        return [self.ident, *kids]

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:]) or "empty log"


LAB_BIN = Path("/run/skylift-lab")  # root's, 0755: a place keepalived's script rule accepts


def lab_python(python: str | None = None) -> str:
    """A Python for the VIP's health check that keepalived's script rule accepts wherever the
    checkout lies (a clone under /tmp sits below a folder everyone can write to): a launcher
    in a root-owned folder that runs this checkout's interpreter. A real MN's slot is root's,
    and its own Python is used as it is."""
    import hashlib
    import sys

    python = python or sys.executable
    LAB_BIN.mkdir(mode=0o755, exist_ok=True)
    LAB_BIN.chmod(0o755)
    path = LAB_BIN / f"python-{hashlib.sha256(python.encode()).hexdigest()[:12]}"
    text = f'#!/bin/sh\nexec {python} "$@"\n'
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(path)
    return str(path)


def keepalived_folder(net: LabNetwork, node: NsNode) -> Path:
    """Where a node's keepalived keeps its files (beside its node root)."""
    return net.base_dir / f"{node.name}-keepalived"


def start_keepalived(net: LabNetwork, node: NsNode, config: str,
                     timeout: float = START_TIMEOUT, folder: Path | None = None
                     ) -> NodeKeepalived:
    """Write config for the node, check it with `keepalived -t` inside the node's namespace,
    start keepalived there; returns once its VRRP process runs."""
    binary = keepalived_path()
    folder = folder or keepalived_folder(net, node)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    conf = folder / "keepalived.conf"
    write_atomic(conf, config.encode())
    conf.chmod(0o600)
    config_test(conf, where=net.argv(node, []))
    vrrp_pid = folder / "vrrp.pid"
    vrrp_pid.unlink(missing_ok=True)
    argv = [binary, "-n", "-l", "-D", "-G", "-P", "-f", str(conf),
            "-p", str(folder / "keepalived.pid"), "-r", str(vrrp_pid)]
    log = open(folder / "keepalived.log", "ab")
    try:
        proc = net.popen(node, argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True, close_fds=True)
    finally:
        log.close()
    ident = ProcessId.of(proc.pid)
    handle = NodeKeepalived(node=node, folder=folder, pid=proc.pid,
                            start=ident.start if ident else 0)
    deadline = time.monotonic() + timeout
    while not _vrrp_running(vrrp_pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            ended = (f"it exited with status {proc.returncode}" if proc.poll() is not None
                     else f"its VRRP process did not start within {timeout:g}s")
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise LabError(f"keepalived of lab node {node.name} did not start",
                           why=f"{ended}; {handle.log_tail()}",
                           next=f"look at {handle.log} and {conf}")
        time.sleep(0.02)
    return handle


def _vrrp_running(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False
    return ProcessId.of(pid) is not None


def start_vip(net: LabNetwork, nodes: list[NsNode], spec: VipSpec) -> list[NodeKeepalived]:
    """keepalived on every node, each with its own rendered configuration (spec.mn_addresses
    are the nodes' addresses); on a failure the ones started are stopped again."""
    started: list[NodeKeepalived] = []
    try:
        for node in nodes:
            started.append(start_keepalived(net, node, render(spec, node.address,
                                                                  router_id=node.name)))
    except BaseException:
        for ka in started:
            stop_keepalived(ka)
        raise
    return started


def stop_keepalived(ka: NodeKeepalived, timeout: float = 5.0) -> None:
    """Stop it as an operator does (SIGTERM to the parent, SIGKILL after timeout): it gives
    the VIP up (a priority-0 advert and the address removed) before it ends. Harmless when
    it is gone."""
    kids = ka.processes()[1:]
    stop(ka.ident, timeout)
    for kid in kids:  # normally gone with their parent
        stop(kid, 1.0)
    _reap(ka.pid)


def kill_keepalived(ka: NodeKeepalived) -> list[int]:
    """A crash: SIGKILL to keepalived's processes, the VRRP one first, with the parent held
    (SIGSTOP) so it neither respawns the child nor tidies up. Nothing gives the VIP up: the
    address stays on the node's interface and the peers take over when the adverts stop.
    Returns the pids killed."""
    procs = ka.processes()
    if not procs:
        return []
    parent, kids = procs[0], procs[1:]
    _signal(parent, signal.SIGSTOP)
    for proc in kids:
        _signal(proc, signal.SIGKILL)
    _signal(parent, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(p.alive() for p in procs):
        _reap(ka.pid)
        if time.monotonic() > deadline:
            raise LabError(f"keepalived of lab node {ka.node.name} survived SIGKILL",
                           why=f"processes {[p.pid for p in procs if p.alive()]} still run",
                           next="look at them with `ps -o pid,stat,cmd`")
        time.sleep(0.01)
    _reap(ka.pid)
    return [p.pid for p in procs]


def _signal(proc: ProcessId, sig: int) -> None:
    if proc.alive():
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # our child when we started it
    except ChildProcessError:
        pass


def node_addresses(node: NsNode) -> list[str]:
    """Every IPv4 address on the node's interfaces (lo aside), from `ip -n <ns> -j addr`."""
    done = subprocess.run(["ip", "-n", node.netns, "-j", "addr", "show"], capture_output=True,
                          text=True, timeout=10)
    if done.returncode != 0:
        raise LabError(f"cannot read the addresses of lab node {node.name}",
                       why=done.stderr.strip() or f"exit status {done.returncode}",
                       next="is its namespace still there? (`ip netns list`)")
    links = json.loads(done.stdout or "[]")
    return [a["local"] for link in links if link.get("ifname") != "lo"
            for a in link.get("addr_info", []) if a.get("family") == "inet"]


def vip_holders(nodes: list[NsNode], vip: str) -> list[NsNode]:
    """The nodes whose interfaces carry the VIP now (one, when all is well)."""
    return [node for node in nodes if vip in node_addresses(node)]


def wait_for_holder(nodes: list[NsNode], vip: str, timeout: float,
                    among: list[NsNode] | None = None,
                    interval: float = 0.05) -> tuple[NsNode, float]:
    """Wait until exactly one node of `among` (default: all) carries the VIP; (that node,
    seconds waited). LabError naming the holders seen when it does not happen in time."""
    among = among if among is not None else nodes
    started = time.monotonic()
    while True:
        holders = vip_holders(among, vip)
        if len(holders) == 1:
            return holders[0], time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise LabError(f"no single node of {[n.name for n in among]} holds the VIP {vip} "
                           f"after {timeout:g}s",
                           why=f"holders now: {[n.name for n in holders] or 'none'}",
                           next="look at each node's keepalived.log")
        time.sleep(interval)
