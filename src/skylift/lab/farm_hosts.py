"""The simulated hosts of a farm: identity, node root and agent instance of each one.

A farm host is a node root (node.json, packages.json, sim.json pointing at the farm's shared
sim hypervisor) plus, in the farm process, the state a running agent would hold: its boot id,
start time and the skylift-agent version it "started" with. Restarting a farm host's agent
renews those and drops its open connections, exactly what a real agent restart shows the MN;
a self-upgrade hands over as a detached real agent does (skylift.agent.handover): the new
agent's state from the answer on, the old agent's connections closed once it answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
import uuid as uuidlib
from functools import lru_cache
from pathlib import Path

import anyio

from skylift.agent import packages as pkgs
from skylift.agent.app import boot_doc, node_boot_id, version_doc
from skylift.agent.hypervisor.simaddr import SHARED_FILE
from skylift.agent.node import NODE_FILE, read_node
from skylift.lineage import release
from skylift.pki.trust import node_tls_files, server_context


class FarmHost:
    """One simulated host as the farm process holds it (a skylift.agent.app.ServedNode)."""

    __slots__ = ("address", "node_root", "uuid", "role", "os_release", "agent_version",
                 "agent_boot_id", "started_at", "restarts", "up", "connections", "_driver",
                 "tls_files", "_tls", "_tls_stamp", "_leaving")
    driver_name = "sim"  # what the agent's version document reports, without making the driver
    restarts_itself = True  # the farm restarts a host's agent in-process (restart_soon)

    def __init__(self, address: str, node_root: Path, uuid: str, role: str,
                 os_release: str) -> None:
        self.address = address
        self.node_root = node_root
        self.uuid = uuid
        self.role = role
        self.os_release = os_release
        self.restarts = 0
        self.up = True
        self.connections: set = set()  # open HTTP connections of this host's agent
        self._leaving: set = set()  # those of an agent that handed over, closed once it answered
        self._driver = None
        self._tls, self._tls_stamp = None, None
        self.start_agent()

    def start_agent(self) -> None:
        """(Re)start this host's agent: a new boot id, the skylift-agent installed now."""
        self.agent_version = pkgs.installed_version(self.node_root, pkgs.AGENT_PACKAGE) or "unknown"
        self.agent_boot_id = uuidlib.uuid4().hex
        self.started_at = time.time()
        # as a real agent loads NODE_ROOT/tls when it starts (on its own CPU, before anyone
        # connects): with a certificate, TLS only
        self.tls_files = node_tls_files(self.node_root)
        stamp = _stamp(self.tls_files)
        if stamp != self._tls_stamp:
            # a context is loaded anew only from files that changed: parsing a key and a CA
            # costs ~1 ms, which a real agent spends on its own node, while the farm's
            # thousands of hosts share the bench machine's two cores with the MN
            self._tls = server_context(*self.tls_files) if self.tls_files else None
            self._tls_stamp = stamp

    @property
    def serves_tls(self) -> bool:
        return self._tls is not None

    async def restart_soon(self) -> None:
        """What an agent's self-upgrade restart does, on the farm's loop (its transports)."""
        self.restart_agent()

    def hand_over(self) -> dict:
        """What a detached agent's handover does (skylift.agent.handover): the agent now
        installed serves from here on, new connections are its own, and the old agent's end
        after its answer (exit_after_answer). The host's state changes on the farm's loop:
        from the agent app's worker thread, it is run there."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread of the agent's app
            return anyio.from_thread.run(self._hand_over)
        return self._swap()

    async def _hand_over(self) -> dict:
        return self._swap()

    def _swap(self) -> dict:
        self._leaving = self.connections
        self.connections = set()
        self.start_agent()
        self.restarts += 1
        return {**version_doc(self), **boot_doc(self, os.getpid(), _kernel_boot_id())}

    async def exit_after_answer(self) -> None:
        """The old agent ends: its connections close (the order's, once answered, too)."""
        leaving, self._leaving = self._leaving, set()
        for proto in leaving:
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.close()

    def tls_context(self) -> ssl.SSLContext | None:
        """This host's agent's server context, or None while it has no certificate."""
        return self._tls

    def restart_agent(self) -> None:
        """What `systemctl restart skylift-agent` does: drop connections, start afresh."""
        self.up = False
        for proto in list(self.connections):
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.close()
        self.connections.clear()
        self.start_agent()
        self.restarts += 1
        self.up = True

    def driver(self):
        """The sim hypervisor driver of this host (VMs live in the shared daemon, not here)."""
        if self._driver is None:
            from skylift.agent.hypervisor.sim import SimDriver

            self._driver = SimDriver(self.node_root, self.address)
        return self._driver


@lru_cache(maxsize=1)
def _kernel_boot_id() -> str:
    return node_boot_id()


def _stamp(files: tuple[Path, ...] | None) -> tuple | None:
    """What tells a file set changed: each file's inode, size and modification time."""
    if files is None:
        return None
    stats = [f.stat() for f in files]
    return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats)


def host_packages(release_version: str, os_release: str) -> dict[str, str]:
    """The package database a host of this release and OS reports."""
    rel = release(release_version)
    hp = rel.packages.get(os_release) or rel.packages[rel.os_releases[0]]
    return {pkgs.AGENT_PACKAGE: rel.version, pkgs.QEMU_PACKAGE: hp.qemu,
            pkgs.LIBVIRT_PACKAGE: hp.libvirt}


def prepare_node_root(node_root: Path, uuid: str, role: str, os_release: str,
                      packages: dict[str, str], shared_sim_root: Path) -> None:
    """Write a farm host's node root unless it exists (then its state is kept as it is).

    Plain writes, no fsync: a farm creates thousands of node roots of a throwaway lab, and
    the atomic, fsynced writes of skylift.agent.store would cost a disk flush each.
    """
    node_root.mkdir(parents=True, exist_ok=True)
    if (node_root / NODE_FILE).exists():
        return
    (node_root / SHARED_FILE).write_text(json.dumps({"root": str(shared_sim_root)}))
    (node_root / pkgs.PACKAGES_FILE).write_text(json.dumps(dict(sorted(packages.items()))))
    # node.json last: its presence marks a complete node root
    tmp = node_root / f".{NODE_FILE}.tmp"
    tmp.write_text(json.dumps({"uuid": uuid, "role": role, "os_release": os_release,
                               "os": os_release}))
    os.replace(tmp, node_root / NODE_FILE)


def load_host(address: str, node_root: Path) -> FarmHost:
    """The farm host of a prepared node root."""
    node = read_node(node_root)
    if node is None:
        raise FileNotFoundError(node_root / NODE_FILE)
    return FarmHost(address, node_root, node.uuid, node.role, node.os_release)
