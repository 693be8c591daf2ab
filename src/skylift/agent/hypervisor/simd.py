"""The sim hypervisor: one detached daemon per node that holds the node's simulated VMs.

    python -m skylift.agent.hypervisor.simd --node-root DIR [--ready-fd N]

It stands in for libvirtd + QEMU: it outlives the agent (started once, in its own session),
keeps each VM's state and boot id in memory, and answers JSON-line requests on a unix socket
(simaddr.py). VM definitions (name, HA flag) are kept in NODE_ROOT/sim/domains.json, so a
daemon that is itself restarted knows its VMs again, all Stopped, as after a host crash.
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
from skylift.agent.hypervisor.simaddr import PIDFILE, SOCKET_NAME, simd_address
from skylift.agent.store import read_json, write_json

RUNNING, STOPPED = "Running", "Stopped"


class SimHypervisor:
    """The VMs of one node, in memory."""

    def __init__(self, node_root: Path) -> None:
        self.node_root = node_root
        self.domains_path = node_root / "sim" / "domains.json"
        self.vms: dict[str, dict] = {}
        for uuid, spec in (read_json(self.domains_path, {}) or {}).items():
            self.vms[uuid] = {**spec, "uuid": uuid, "state": STOPPED, "boot_id": None,
                              "started_at": None}

    def _save(self) -> None:
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
        except (KeyError, TypeError) as exc:
            return {"ok": False, "kind": "usage", "error": f"bad request: {exc}"}


async def _serve(node_root: Path, ready) -> None:
    nodes = {str(node_root): SimHypervisor(node_root)}

    def hypervisor(req: dict) -> SimHypervisor:
        # a shared daemon serves many node roots; each request names its own
        root = req.get("node") or str(node_root)
        if root not in nodes:
            nodes[root] = SimHypervisor(Path(root))
        return nodes[root]

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    resp = hypervisor(req).handle(req)
                except ValueError:
                    resp = {"ok": False, "kind": "usage", "error": "not JSON"}
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
    write_json(node_root / PIDFILE, {"pid": os.getpid(), "address": address.replace("\0", "@")})
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
