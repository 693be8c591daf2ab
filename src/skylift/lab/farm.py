"""The host farm: one process serving thousands of simulated hosts (DESIGN "lab").

Every farm host has its own loopback address (127.x.y.z), its own agent endpoint (the agent
API on the agent port) and its own SSH endpoint (the SSH port, key auth with the farm's client
key, host key pinned in the farm's known_hosts). VMs live in a shared sim hypervisor daemon
that outlives the farm, so restarting a farm host's agent (or the whole farm) never stops one.

    handle = start_farm(1000, base_dir=d, agent_port=0, ssh_port=0, release="3.7.1")
    handle.url(handle.addresses[0])        # http://127.1.0.1:PORT
    stop_farm(handle)                      # farm process and (by default) its VMs
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from skylift.agent.hypervisor.daemon import log_tail
from skylift.agent.launch import agent_env
from skylift.processes import pid_alive, terminate
from skylift.agent.hypervisor.sim import stop_simd
from skylift.agent.store import read_json, write_json
from skylift.lab.addresses import loopback_addresses
from skylift.lab.errors import LabError
from skylift.lab.farm_server import SPEC_FILE, STATE_FILE, rss_bytes
from skylift.lineage import release as get_release

FARM_MARKER = "skylift.lab.farm_server"


@dataclass
class FarmHandle:
    """A running farm: where its hosts answer and what the MN needs to reach them."""

    base_dir: Path
    pid: int
    addresses: list[str]
    agent_port: int
    ssh_port: int
    known_hosts: Path
    client_key: Path
    sim_root: Path
    popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def url(self, address: str) -> str:
        """The agent URL of one farm host."""
        return f"http://{address}:{self.agent_port}"

    def node_root(self, address: str) -> Path:
        """The node root of one farm host."""
        return self.base_dir / "nodes" / address

    def alive(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            return False
        return pid_alive(self.pid, FARM_MARKER)

    def rss_bytes(self) -> int:
        """The farm process's resident memory now."""
        return rss_bytes(self.pid)

    def to_dict(self) -> dict:
        return {"base_dir": str(self.base_dir), "pid": self.pid, "hosts": len(self.addresses),
                "first_address": self.addresses[0] if self.addresses else None,
                "agent_port": self.agent_port, "ssh_port": self.ssh_port,
                "known_hosts": str(self.known_hosts), "client_key": str(self.client_key),
                "sim_root": str(self.sim_root)}


def start_farm(n_hosts: int, *, base_dir: Path, agent_port: int = 7070, ssh_port: int = 22,
               release: str, os_release: str = "c74", first_address: str = "127.1.0.1",
               uuids: list[str] | None = None, roles: list[str] | None = None,
               sim_root: Path | None = None,
               token_file: Path | None = None, timeout: float = 120.0,
               pki_dir: Path | None = None) -> FarmHandle:
    """Start a farm of n_hosts (subprocess) and return once every endpoint listens.

    Port 0 picks a free port. uuids (and roles) give the hosts' uuids (an inventory's) and
    agent roles (default host); sim_root is the
    folder of the shared sim hypervisor (default base_dir/sim); hosts of release R report
    skylift-agent R and the QEMU and libvirt of R for os_release. pki_dir: the cloud's CA
    (skylift.pki) deploys each host's agent with a certificate (TLS); without one they speak
    plain HTTP, as agents of a release before TLS.
    """
    rel = get_release(release)
    base_dir = Path(base_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    addresses = loopback_addresses(n_hosts, first_address)
    if uuids is not None and len(uuids) != n_hosts:
        raise LabError(f"{len(uuids)} uuids for {n_hosts} farm hosts",
                       next="give one uuid per host, or none")
    sim_root = Path(sim_root or base_dir / "sim").resolve()
    hosts = [{"address": a, "uuid": uuids[i] if uuids else os.urandom(16).hex(),
              "role": roles[i] if roles else "host"} for i, a in enumerate(addresses)]
    previous = read_json(base_dir / "hosts.json")
    if previous and len(previous) == n_hosts:
        hosts = previous  # a farm started again keeps its hosts' identities
        addresses = [h["address"] for h in hosts]
    write_json(base_dir / "hosts.json", hosts)
    write_json(base_dir / SPEC_FILE, {
        "release": rel.version, "os_release": os_release, "agent_port": agent_port,
        "ssh_port": ssh_port, "sim_root": str(sim_root),
        "token_file": str(token_file) if token_file else None,
        "pki_dir": str(pki_dir) if pki_dir else None})
    (base_dir / STATE_FILE).unlink(missing_ok=True)
    log_path = base_dir / "farm.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", FARM_MARKER, "--base-dir", str(base_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd="/",
            env=agent_env())  # its agents and hypervisor never see the starter's secrets
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_json(base_dir / STATE_FILE)
        if state and state.get("pid") == popen.pid:
            return FarmHandle(base_dir, popen.pid, addresses, state["agent_port"],
                              state["ssh_port"], Path(state["known_hosts"]),
                              Path(state["client_key"]), sim_root, popen)
        if popen.poll() is not None:
            raise LabError(f"the farm of {n_hosts} hosts exited at start "
                           f"(status {popen.returncode})",
                           why=log_tail(log_path), next=f"read {log_path}")
        time.sleep(0.05)
    _end(popen.pid, popen)
    raise LabError(f"the farm of {n_hosts} hosts did not start within {timeout:.0f}s",
                   why=log_tail(log_path), next=f"read {log_path}")


def find_farm(base_dir: Path) -> FarmHandle | None:
    """The farm running from base_dir (after the starter itself went away), if any."""
    base_dir = Path(base_dir).resolve()
    state, hosts = read_json(base_dir / STATE_FILE), read_json(base_dir / "hosts.json")
    if not state or not hosts or not pid_alive(state.get("pid"), FARM_MARKER):
        return None
    return FarmHandle(base_dir, state["pid"], [h["address"] for h in hosts], state["agent_port"],
                      state["ssh_port"], Path(state["known_hosts"]), Path(state["client_key"]),
                      Path(state["sim_root"]))


def stop_farm(handle: FarmHandle, *, keep_vms: bool = False, timeout: float = 20.0) -> None:
    """Stop the farm process; unless keep_vms, also its sim hypervisor (its VMs stop with it)."""
    _end(handle.pid, handle.popen, timeout)
    if not keep_vms:
        stop_simd(handle.sim_root)


def _end(pid: int, popen: subprocess.Popen | None, timeout: float = 20.0) -> None:
    terminate(pid, FARM_MARKER, timeout)
    if popen is not None:  # ours: reap it
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
