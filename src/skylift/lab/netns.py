"""Lab hosts that are real nodes: Linux network namespaces on a lab bridge (root, iproute2).

    net = LabNetwork(block_of("bench"), base_dir=lab_dir("bench") / "nodes")
    nodes = net.create(["host-1", "host-2"], os_release="c74")
    net.run(nodes[0], ["ip", "route"])            # `ip netns exec <ns> ip route`
    net.remove()                                  # or remove_lab_network(block) after a crash

Each lab block B (2..99, `skylift.lab.state.block_of`) owns one subnet, 198.18.B.0/24 — in
198.18.0.0/15, the range set aside for benchmark networks — and every name below:

    bridge      skyl<B>br      198.18.B.1/24, in the root namespace (where the MN listens)
    namespace   skyl<B>n<i>    node i (1-based): eth0 = 198.18.B.(10+i)/24, lo up
    veth        skyl<B>v<i>    the root end of node i's pair, on the bridge; the inner end is
                               renamed eth0 inside the namespace
    /etc/netns/skyl<B>n<i>/    os-release of the node: `ip netns exec` bind-mounts the files
                               there over /etc/ for every process it starts (sshd, sessions)

Nothing routes beyond the machine: a namespace has no default route (only its /24 on eth0),
no NAT is set up and ip_forward is left as it is, so a node reaches the bridge address and the
other nodes of its lab, nothing else. The names follow from the block alone, so `remove` (and
`remove_lab_network(block)` for a lab whose state is gone) finds everything by name, not by
what was recorded: the processes inside the namespaces (`ip netns pids`), the veths, the
namespaces, the bridge and the /etc/netns folders. Every interface name stays within Linux's
15 characters (`skyl99v244` is 10).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from skylift.errors import UsageError
from skylift.lab.errors import LabError
from skylift.processes import ProcessId

LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
ETC_NETNS = Path("/etc/netns")
FIRST_HOST = 10            # node i is 198.18.B.(FIRST_HOST + i)
MAX_NODES = 254 - FIRST_HOST
IFNAMSIZ = 15              # the longest interface name Linux accepts
NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
IP_MISSING_NEXT = "install iproute2 (`apt-get install iproute2`) and run as root"


def prefix(block: int) -> str:
    """The start of every name lab block `block` owns: skyl<B>."""
    if not isinstance(block, int) or not 2 <= block <= 99:
        raise UsageError(f"lab block {block!r} is out of range",
                         why="a lab block is 2..99 (skylift.lab.state.block_of)",
                         next="take the block from block_of(lab name)")
    return f"skyl{block}"


def netns_name(block: int, index: int) -> str:
    return f"{prefix(block)}n{index}"


def veth_name(block: int, index: int) -> str:
    return f"{prefix(block)}v{index}"


def bridge_name(block: int) -> str:
    return f"{prefix(block)}br"


def _owned(block: int, kind: str) -> re.Pattern:
    """Names of kind n (namespace) or v (veth) owned by the block: exactly skyl<B><kind><i>,
    so block 9 never matches block 97's names."""
    return re.compile(rf"^{prefix(block)}{kind}(\d+)$")


def os_release_text(os_release: str) -> str:
    """/etc/os-release of a node whose OS is os_release ("c7N": CentOS Linux 7.N)."""
    found = re.fullmatch(r"c7(\d)", os_release or "")
    if not found:
        raise UsageError(f"unknown lab OS release {os_release!r}",
                         why="a lab namespace node shows CentOS 7.N, named c7N (c74, c79)",
                         next="give --os c74 (or another c7N)")
    version = f"7.{found.group(1)}"
    return (f'NAME="CentOS Linux"\n'
            f'VERSION="{version} (skylift lab namespace)"\n'
            f'ID="centos"\n'
            f'ID_LIKE="rhel fedora"\n'
            f'VERSION_ID="{version}"\n'
            f'PRETTY_NAME="CentOS Linux {version} (skylift lab namespace)"\n')


def ip(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    """Run `ip ARGS`; LabError naming the command and ip's message when it fails (check)."""
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise LabError("cannot build lab namespaces: `ip` is not installed",
                       why="lab namespace nodes are made with iproute2",
                       next=IP_MISSING_NEXT) from None
    if check and done.returncode != 0:
        raise LabError(f"`ip {' '.join(args)}` failed",
                       why=done.stderr.strip() or f"exit status {done.returncode}",
                       next="lab namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); "
                            "clean leftovers with `skylift lab down`")
    return done


def _ip_json(args: list[str]) -> list[dict]:
    out = ip(["-json", *args]).stdout.strip()
    return json.loads(out) if out else []


@dataclass
class NsNode:
    """One node of a lab: its namespace, its address on the lab bridge, its own folder."""

    name: str          # node name, e.g. "host-1"
    netns: str         # namespace name, skyl<B>n<i>
    address: str       # its IPv4 address on the lab bridge, in 198.18.0.0/15
    gateway: str       # the bridge's address in the root namespace (where the MN listens)
    node_root: Path    # its own node root folder (0700) under base_dir/<name>
    index: int = 0     # i: the node's number in its lab (1-based)
    veth: str = ""     # the root end of its veth pair, on the bridge

    def to_dict(self) -> dict:
        """The node as lab.json keeps it."""
        return {"name": self.name, "netns": self.netns, "address": self.address,
                "gateway": self.gateway, "node_root": str(self.node_root),
                "index": self.index, "veth": self.veth}

    @classmethod
    def from_dict(cls, data: dict) -> "NsNode":
        return cls(**{**data, "node_root": Path(data["node_root"])})


class LabNetwork:
    """The lab bridge of one lab block and the namespace nodes on it."""

    def __init__(self, lab_block: int, base_dir: Path) -> None:
        self.lab_block = lab_block
        self.prefix = prefix(lab_block)
        self.base_dir = Path(base_dir)
        self.bridge = bridge_name(lab_block)
        self.gateway = f"198.18.{lab_block}.1"
        self.subnet = f"198.18.{lab_block}.0/24"
        assert ipaddress.ip_network(self.subnet).subnet_of(LAB_RANGE)
        self.nodes: list[NsNode] = []

    # --- building -------------------------------------------------------------------------
    def node_address(self, index: int) -> str:
        """Node i's address (1-based): 198.18.B.(10+i)."""
        if not 1 <= index <= MAX_NODES:
            raise UsageError(f"a lab network holds at most {MAX_NODES} namespace nodes",
                             why=f"node addresses are 198.18.{self.lab_block}.11-254",
                             next="use the host farm (--farm) for more hosts")
        return f"198.18.{self.lab_block}.{FIRST_HOST + index}"

    def _ensure_bridge(self) -> None:
        if ip(["link", "show", "dev", self.bridge], check=False).returncode == 0:
            return
        # no STP and no forward delay: a port forwards as soon as it is up
        ip(["link", "add", self.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
        ip(["addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        ip(["link", "set", self.bridge, "up"])

    def create(self, names: list[str], os_release: str = "c74") -> list[NsNode]:
        """The bridge (once) and a namespace per name: a veth pair on the bridge, the node's
        address on eth0, lo up, no default route; its os-release in /etc/netns/<ns>/.

        Nodes are numbered after those this object made already. A namespace of that number
        left by an earlier lab of the same block is refused (remove_lab_network first); on a
        failure every node of this call is taken down again."""
        release = os_release_text(os_release)
        bad = [n for n in names if not NODE_NAME.match(str(n))]
        taken = {n.name for n in self.nodes}
        dupes = {n for n in names if n in taken or names.count(n) > 1}
        if bad or dupes:
            raise UsageError(f"cannot make lab nodes {sorted(set(bad) | dupes)}",
                             why="a node name is letters, digits, '.', '_' or '-' (it names a "
                                 "folder), and is given once",
                             next="give each node a unique plain name")
        first = len(self.nodes) + 1
        self.node_address(first + len(names) - 1)  # refuses too many before any change
        existing = {ns["name"] for ns in _ip_json(["netns", "list"])}
        clash = [netns_name(self.lab_block, first + k) for k in range(len(names))
                 if netns_name(self.lab_block, first + k) in existing]
        if clash:
            raise LabError(f"lab namespaces {clash} exist already",
                           why=f"an earlier lab of block {self.lab_block} left them "
                               "(its down did not run)",
                           next=f"remove them: `skylift lab down --name <lab>` or "
                                f"remove_lab_network({self.lab_block})")
        self.base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._ensure_bridge()
        made: list[NsNode] = []
        try:
            for k, name in enumerate(names):
                made.append(self._create_node(first + k, name, release))
        except BaseException:
            for node in made:
                _remove_node(node.netns, node.veth)
            _remove_node(netns_name(self.lab_block, first + len(made)),
                         veth_name(self.lab_block, first + len(made)))
            if not self.nodes:
                ip(["link", "del", self.bridge], check=False)
            raise
        self.nodes.extend(made)
        return made

    def _create_node(self, index: int, name: str, release: str) -> NsNode:
        ns, veth = netns_name(self.lab_block, index), veth_name(self.lab_block, index)
        assert len(veth) <= IFNAMSIZ and len(self.bridge) <= IFNAMSIZ
        address = self.node_address(index)
        # /etc/netns/<ns>/ first: a crash after `netns add` still leaves a name down finds
        etc = ETC_NETNS / ns
        etc.mkdir(mode=0o755, parents=True, exist_ok=True)
        (etc / "os-release").write_text(release)
        ip(["netns", "add", ns])
        ip(["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        ip(["link", "set", veth, "master", self.bridge, "up"])
        ip(["-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
        ip(["-n", ns, "link", "set", "eth0", "up"])
        ip(["-n", ns, "link", "set", "lo", "up"])
        routes = _ip_json(["-n", ns, "route", "show", "default"])
        if routes:  # nothing above adds one; a namespace must never route beyond the machine
            raise LabError(f"lab namespace {ns} has a default route", why=str(routes),
                           next="report this: lab nodes must not reach beyond the machine")
        node_root = self.base_dir / name
        node_root.mkdir(mode=0o700, exist_ok=True)
        node_root.chmod(0o700)
        return NsNode(name=name, netns=ns, address=address, gateway=self.gateway,
                      node_root=node_root, index=index, veth=veth)

    # --- running inside a node --------------------------------------------------------------
    def argv(self, node: NsNode, argv: list[str]) -> list[str]:
        """argv as run inside the node: `ip netns exec <ns> argv`."""
        return ["ip", "netns", "exec", node.netns, *argv]

    def run(self, node: NsNode, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """subprocess.run of argv inside the node (its network, its /etc/netns files)."""
        return subprocess.run(self.argv(node, argv), **kw)

    def popen(self, node: NsNode, argv: list[str], **kw) -> subprocess.Popen:
        """subprocess.Popen of argv inside the node; `ip netns exec` execs argv, so the
        Popen's pid is argv's own."""
        return subprocess.Popen(self.argv(node, argv), **kw)

    # --- taking down ------------------------------------------------------------------------
    def remove(self) -> dict:
        """Everything of this lab block, found by name (see remove_lab_network)."""
        done = remove_lab_network(self.lab_block)
        self.nodes = []
        return done


def _pids_in(ns: str) -> list[int]:
    done = ip(["netns", "pids", ns], check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def _kill_all(namespaces: list[str], timeout: float = 5.0) -> list[int]:
    """SIGTERM every process in the namespaces, SIGKILL those left after timeout; the pids
    signalled. Processes are told apart by identity (pid and start time)."""
    procs = {p for ns in namespaces for pid in _pids_in(ns)
             if (p := ProcessId.of(pid)) is not None}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if proc.alive():
                try:
                    os.kill(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            for proc in procs:  # reap those that are our own children
                try:
                    os.waitpid(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            if not any(proc.alive() for proc in procs):
                break
            time.sleep(0.02)
    left = [p.pid for p in procs if p.alive()]
    if left:
        raise LabError(f"processes {left} in lab namespaces did not end",
                       why="they survived SIGKILL (stuck in the kernel?)",
                       next="look at them with `ps -o pid,stat,cmd -p PID`; run down again")
    return sorted(p.pid for p in procs)


def _remove_node(ns: str, veth: str) -> None:
    _kill_all([ns])
    ip(["link", "del", veth], check=False)
    ip(["netns", "del", ns], check=False)
    shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)


def remove_lab_network(lab_block: int) -> dict:
    """Take down every namespace, veth, bridge, /etc/netns folder and process of lab block
    `lab_block`, found by name alone (a crashed lab is cleaned as well as a live one).

    Order: the processes inside the namespaces (so none keeps a namespace alive after it is
    unnamed), the root ends of the veths (each takes its pair along), the namespaces, the
    bridge, the /etc/netns folders. Harmless to repeat; returns what it removed."""
    ns_pattern, veth_pattern = _owned(lab_block, "n"), _owned(lab_block, "v")
    if shutil.which("ip") is None:  # without iproute2 no lab network was ever made here
        return {"block": lab_block, "killed": [], "namespaces": [], "veths": [],
                "bridges": [], "etc_netns": []}
    try:
        named = [ns["name"] for ns in _ip_json(["netns", "list"])]
    except LabError:  # no /run/netns yet: no namespace at all
        named = []
    namespaces = sorted(n for n in named if ns_pattern.match(n))
    killed = _kill_all(namespaces)
    links = [link["ifname"] for link in _ip_json(["link", "show"])]
    veths = sorted(n for n in links if veth_pattern.match(n.split("@")[0]))
    for veth in veths:
        ip(["link", "del", veth], check=False)
    for ns in namespaces:
        ip(["netns", "del", ns], check=False)
    bridge = bridge_name(lab_block)
    bridges = [bridge] if bridge in links else []
    for name in bridges:
        ip(["link", "del", name], check=False)
    folders = sorted(p.name for p in ETC_NETNS.iterdir()
                     if ns_pattern.match(p.name)) if ETC_NETNS.is_dir() else []
    for folder in folders:
        shutil.rmtree(ETC_NETNS / folder, ignore_errors=True)
    left = _leftovers(lab_block)
    if left:
        raise LabError(f"lab block {lab_block}'s network is not fully removed: {left}",
                       why="iproute2 refused to delete them (see `ip link`, `ip netns list`)",
                       next="run down again; delete them by hand with `ip link del` / "
                            "`ip netns del`")
    return {"block": lab_block, "killed": killed, "namespaces": namespaces, "veths": veths,
            "bridges": bridges, "etc_netns": folders}


def _leftovers(lab_block: int) -> list[str]:
    """Names of lab block `lab_block` that still exist (empty when its network is gone)."""
    ns_pattern, veth_pattern = _owned(lab_block, "n"), _owned(lab_block, "v")
    names = [ns["name"] for ns in _ip_json(["netns", "list"]) if ns_pattern.match(ns["name"])]
    names += [link["ifname"] for link in _ip_json(["link", "show"])
              if veth_pattern.match(link["ifname"]) or link["ifname"] == bridge_name(lab_block)]
    if ETC_NETNS.is_dir():
        names += [str(ETC_NETNS / p.name) for p in ETC_NETNS.iterdir() if ns_pattern.match(p.name)]
    return names


def lab_blocks_present() -> list[int]:
    """Every lab block that has a namespace, veth or bridge on this machine (by name)."""
    if shutil.which("ip") is None:
        return []
    try:
        names = [ns["name"] for ns in _ip_json(["netns", "list"])]
    except LabError:  # no /run/netns yet
        names = []
    names += [link["ifname"].split("@")[0] for link in _ip_json(["link", "show"])]
    found = {int(m.group(1)) for m in map(re.compile(r"^skyl(\d+)(?:[nv]\d+|br)$").match, names)
             if m and 2 <= int(m.group(1)) <= 99}
    return sorted(found)


def lab_network_exists(lab_block: int) -> bool:
    """Whether anything of lab block `lab_block`'s network exists (by name); never on a
    machine without iproute2 (nothing could have made it)."""
    if shutil.which("ip") is None:
        return False
    return bool(_leftovers(lab_block))
