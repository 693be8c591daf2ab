"""The `sim` driver: a client of the node's sim hypervisor daemon (simd.py).

The driver starts the daemon when none answers (under a file lock, so two agents or two
threads never start two), and talks to it with one short JSON-line exchange per call. A uuid
that is not one (skylift.agent.ids) is refused here already, before the daemon sees it.
"""

from __future__ import annotations

import fcntl
import json
import socket
from pathlib import Path

from skylift.agent.hypervisor.base import HypervisorDriver, VmState
from skylift.agent.hypervisor.daemon import spawn_daemon
from skylift.processes import ProcessId, pid_alive, terminate
from skylift.agent.hypervisor.simaddr import PIDFILE, daemon_root, simd_address
from skylift.agent.ids import check_uuid
from skylift.agent.store import read_json
from skylift.errors import HypervisorError, NoSuchVm

SIMD_MODULE = "skylift.agent.hypervisor.simd"


class SimDriver(HypervisorDriver):
    """Simulated VMs held by a per-node daemon that outlives the agent."""

    name = "sim"

    def __init__(self, node_root, host: str = "127.0.0.1") -> None:
        super().__init__(node_root, host)
        ensure_simd(self.node_root)

    def _call(self, req: dict) -> dict:
        if "uuid" in req:
            check_uuid(req["uuid"])
        try:
            resp = _request(self.node_root, {**req, "node": str(self.node_root)})
        except OSError as exc:
            if simd_alive(self.node_root):
                # busy, not dead: a libvirtd slow to answer is waited for, never replaced (a
                # second daemon would take over the socket knowing every VM as Stopped)
                raise HypervisorError(f"the sim hypervisor did not answer {req.get('op')}",
                                      why=f"{type(exc).__name__}: {exc}; its daemon runs",
                                      next="ask again; see simd.log in the node root") from None
            # the hypervisor itself died (a host crash): start a new one, its VMs are Stopped
            ensure_simd(self.node_root)
            resp = _request(self.node_root, {**req, "node": str(self.node_root)})
        if not resp.get("ok"):
            if resp.get("kind") == "no-such-vm":
                raise NoSuchVm(f"no VM {req.get('uuid')} on node {self.node_root.name}",
                               why="it was never created here or was destroyed",
                               next="list the node's VMs with GET /v1/vms")
            raise HypervisorError(f"sim hypervisor refused {req.get('op')}",
                                  why=resp.get("error", ""), next="see simd.log in the node root")
        return resp

    def _vm(self, req: dict) -> VmState:
        return VmState(**self._call(req)["vm"])

    def create(self, uuid: str, name: str, ha: bool = False, start: bool = True) -> VmState:
        return self._vm({"op": "create", "uuid": uuid, "name": name, "ha": ha, "start": start})

    def start(self, uuid: str) -> VmState:
        return self._vm({"op": "start", "uuid": uuid})

    def stop(self, uuid: str) -> VmState:
        return self._vm({"op": "stop", "uuid": uuid})

    def reboot(self, uuid: str) -> VmState:
        return self._vm({"op": "reboot", "uuid": uuid})

    def destroy(self, uuid: str) -> None:
        self._call({"op": "destroy", "uuid": uuid})

    def get(self, uuid: str) -> VmState:
        return self._vm({"op": "get", "uuid": uuid})

    def list(self) -> list[VmState]:
        return [VmState(**vm) for vm in self._call({"op": "list"})["vms"]]


REQUEST_TIMEOUT = 10.0  # seconds a request waits for the daemon's answer


def _request(node_root: Path, req: dict, timeout: float | None = None) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(REQUEST_TIMEOUT if timeout is None else timeout)
        sock.connect(simd_address(node_root))
        sock.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError("sim daemon closed the connection")
            data += chunk
    return json.loads(data)


def simd_running(node_root: Path) -> bool:
    """Whether the node's sim daemon answers."""
    try:
        return bool(_request(Path(node_root).resolve(), {"op": "ping"}, timeout=2.0).get("ok"))
    except (OSError, ValueError):
        return False


def simd_alive(node_root: Path) -> bool:
    """Whether the daemon the node's pidfile names still runs (by pid and start time), answering
    or not: how busy it is never makes it dead."""
    info = read_json(daemon_root(node_root) / PIDFILE)
    if not info or not info.get("pid"):
        return False
    if "start" in info:
        return ProcessId.from_dict(info).alive()
    return pid_alive(info["pid"], "simd")  # a pidfile of a daemon before start times


def ensure_simd(node_root: Path) -> None:
    """Start the node's sim daemon (or the shared one it points at) unless one runs."""
    node_root = daemon_root(node_root)
    if simd_alive(node_root) or simd_running(node_root):
        return
    node_root.mkdir(parents=True, exist_ok=True)
    with open(node_root / ".simd.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # another starter may have won the race
        if not (simd_alive(node_root) or simd_running(node_root)):
            spawn_daemon(SIMD_MODULE, ["--node-root", str(node_root)], node_root / "simd.log")


def stop_simd(node_root: Path) -> bool:
    """Stop the node's sim daemon (its VMs stop with it, as on a host power-off)."""
    info = read_json(Path(node_root) / PIDFILE)
    if not info or not pid_alive(info.get("pid"), "simd"):
        return False
    terminate(info["pid"], "simd", timeout=3.0)
    return True
