"""The sim hypervisor: one detached daemon per node that holds the node's simulated VMs.

    python -m skylift.agent.hypervisor.simd --node-root DIR [--ready-fd N]

It stands in for libvirtd + QEMU: it outlives the agent (started once, in its own session),
keeps each VM's state and boot id in memory, and answers JSON-line requests on a unix socket
(simaddr.py). VM definitions (name, HA flag) are kept in NODE_ROOT/sim/domains.json, so a
daemon that is itself restarted knows its VMs again, all Stopped, as after a host crash.

A request names its node root (a shared daemon serves many); the daemon serves only its own
root and the node roots whose sim.json names it (simaddr.use_shared_daemon), and writes a
node's domains.json only where it resolves inside that node root. A VM's uuid must be one
(skylift.agent.ids): anything else is refused, never stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid as uuidlib
from pathlib import Path

from skylift.agent.hypervisor.daemon import daemonize_and_ready
from skylift.processes import ProcessId
from skylift.agent.hypervisor.simaddr import (PIDFILE, SHARED_FILE, SOCKET_NAME, daemon_root,
                                              simd_address)
from skylift.agent.ids import UUID_RULE, is_uuid, safe_child
from skylift.agent.store import read_json, write_json
from skylift.errors import UsageError

RUNNING, STOPPED = "Running", "Stopped"
DOMAINS_FILE = "sim/domains.json"
VM_OPS = ("probe", "create", "get", "start", "stop", "reboot", "destroy")


class SimHypervisor:
    """The VMs of one node, in memory."""

    def __init__(self, node_root: Path) -> None:
        self.node_root = node_root
        self.domains_path = safe_child(node_root, DOMAINS_FILE)  # refused if it leads out
        self.vms: dict[str, dict] = {}
        for uuid, spec in (read_json(self.domains_path, {}) or {}).items():
            self.vms[uuid] = {**spec, "uuid": uuid, "state": STOPPED, "boot_id": None,
                              "started_at": None}

    def _save(self) -> None:
        # checked again at every write: a symlink planted since must not lead the write out
        self.domains_path = safe_child(self.node_root, DOMAINS_FILE)
        write_json(self.domains_path, {u: {"name": v["name"], "ha": v["ha"]}
                                       for u, v in self.vms.items()})

    def _view(self, vm: dict) -> dict:
        running = vm["state"] == RUNNING
        return {"uuid": vm["uuid"], "name": vm["name"], "state": vm["state"], "ha": vm["ha"],
                "boot_id": vm["boot_id"], "started_at": vm["started_at"], "pid": os.getpid(),
                "endpoint": f"sim://{self.node_root}#{vm['uuid']}" if running else None}

    def _vm(self, uuid: str) -> dict:
        vm = self.vms.get(uuid)
        if vm is None:
            raise LookupError(uuid)
        return vm

    def _boot(self, vm: dict) -> None:
        vm.update(state=RUNNING, boot_id=uuidlib.uuid4().hex, started_at=time.time())

    def handle(self, req: dict) -> dict:
        """One request -> one response ({"ok": true, ...} or {"ok": false, "kind", "error"})."""
        op, uuid = req.get("op"), req.get("uuid")
        try:
            if op == "ping":
                return {"ok": True, "pid": os.getpid(), "vms": len(self.vms)}
            if op == "list":
                return {"ok": True, "vms": [self._view(v) for v in self.vms.values()]}
            if op in VM_OPS and not is_uuid(uuid):
                return {"ok": False, "kind": "usage",
                        "error": f"invalid VM uuid {uuid!r}: {UUID_RULE}"}
            if op == "probe":  # answered like the VM itself would: boot id only when running
                vm = self.vms.get(uuid)
                running = vm is not None and vm["state"] == RUNNING
                return {"ok": True, "boot_id": vm["boot_id"] if running else None}
            if op == "create":
                if uuid not in self.vms:
                    self.vms[uuid] = {"uuid": uuid, "name": req["name"], "ha": bool(req.get("ha")),
                                      "state": STOPPED, "boot_id": None, "started_at": None}
                    self._save()
                vm = self.vms[uuid]
                if req.get("start", True) and vm["state"] != RUNNING:
                    self._boot(vm)
                return {"ok": True, "vm": self._view(vm)}
            vm = self._vm(uuid)
            if op == "get":
                pass
            elif op == "start":
                if vm["state"] != RUNNING:
                    self._boot(vm)
            elif op == "stop":
                vm.update(state=STOPPED, boot_id=None, started_at=None)
            elif op == "reboot":
                self._boot(vm)
            elif op == "destroy":
                del self.vms[uuid]
                self._save()
                return {"ok": True}
            else:
                return {"ok": False, "kind": "usage", "error": f"unknown op {op!r}"}
            return {"ok": True, "vm": self._view(vm)}
        except LookupError:
            return {"ok": False, "kind": "no-such-vm", "error": f"no VM {uuid}"}
        except (KeyError, TypeError, UsageError) as exc:
            return {"ok": False, "kind": "usage", "error": f"bad request: {exc}"}


def served_root(own_root: Path, name: object) -> Path:
    """The node root a request names, resolved, if this daemon serves it; else UsageError.

    A daemon serves its own root and the node roots of its own user whose sim.json names it
    as their daemon: a request cannot make it read or write state anywhere else.
    """
    if not isinstance(name, str) or not name or "\0" in name or not Path(name).is_absolute():
        raise UsageError(f"invalid node root {name!r}", why="a node root is an absolute path",
                         next="name the node root the driver was made for")
    root = Path(name).resolve()
    if root == own_root:
        return root
    if daemon_root(root) != own_root:
        raise UsageError(f"node root {root} is not served by the sim daemon of {own_root}",
                         why=f"its {SHARED_FILE} does not name this daemon",
                         next="point the node at this daemon (simaddr.use_shared_daemon) "
                              "before its first VM, or let it run its own")
    owner = root.stat().st_uid
    if owner != os.geteuid():  # another user's folder could be changed under our writes
        raise UsageError(f"node root {root} is not served by the sim daemon of {own_root}",
                         why=f"it belongs to uid {owner}, the daemon runs as uid {os.geteuid()}",
                         next="keep the node roots of a shared daemon with the daemon's user")
    return root


async def _serve(node_root: Path, ready) -> None:
    own = SimHypervisor(node_root)
    by_name = {str(node_root): own}  # as requests name them (the resolved root, in practice)
    by_root = {node_root: own}

    def hypervisor(req: dict) -> SimHypervisor:
        # a shared daemon serves many node roots; each request names its own
        if not isinstance(req, dict):
            raise UsageError("a request is a JSON object", next="send {op, uuid, node, ...}")
        name = req.get("node") or str(node_root)
        hv = by_name.get(name) if isinstance(name, str) else None
        if hv is None:
            root = served_root(node_root, name)
            hv = by_root.get(root)
            if hv is None:
                hv = by_root[root] = SimHypervisor(root)
            by_name[name] = hv
        return hv

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    resp = hypervisor(req).handle(req)
                except ValueError:
                    resp = {"ok": False, "kind": "usage", "error": "not JSON"}
                except UsageError as exc:
                    resp = {"ok": False, "kind": "usage", "error": f"{exc.what}: {exc.why}"}
                writer.write(json.dumps(resp).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    address = simd_address(node_root)
    if not address.startswith("\0"):
        Path(address).unlink(missing_ok=True)  # a stale socket of a dead daemon
    server = await asyncio.start_unix_server(client, path=address, limit=1 << 20)
    me = ProcessId.of(os.getpid())  # pid and start time: a reused pid is never taken for it
    write_json(node_root / PIDFILE, {**me.to_dict(), "address": address.replace("\0", "@")})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready({"pid": os.getpid()})
    async with server:
        await stop.wait()
    if not address.startswith("\0"):
        Path(address).unlink(missing_ok=True)
    (node_root / PIDFILE).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skylift-simd")
    parser.add_argument("--node-root", required=True, type=Path)
    parser.add_argument("--ready-fd", type=int)
    args = parser.parse_args(argv)
    ready = daemonize_and_ready(args.ready_fd)
    asyncio.run(_serve(args.node_root.resolve(), ready))
    return 0


__all__ = ["SimHypervisor", "SOCKET_NAME", "main"]

if __name__ == "__main__":
    sys.exit(main())
