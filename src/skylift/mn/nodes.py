"""The node registry: how the MN reaches each node to upgrade its agent and packages.

A deployment (or the lab) writes $SKYLIFT_HOME/mn/nodes.json (0600) once nodes are installed:

    {"known_hosts": "/path/known_hosts", "host_key_policy": "strict",
     "nodes": {"<uuid>": {"transport": "local", "node_root": "/var/lib/skylift/node"},
               "<uuid>": {"transport": "ssh", "host": "127.0.3.7", "port": 2222,
                          "user": "root", "key_path": "/path/key", "node_root": "/...",
                          "host_key_fingerprint": "SHA256:..."}}}

A node missing from the registry is reached over SSH on its management address with the
defaults of a real node. No password is ever stored here (ssh keys, or SKYLIFT_SSH_PASSWORD).
A node deployed by `skylift host add` has `"service": "skylift"`: its agent runs installed
code, so commands run through its launcher (NODE_ROOT/agent/run) and the agent is restarted
by the node's own service command (systemctl where systemd runs). The MN re-reads the file
when it changes, so a host added while it runs is reached as recorded.
Host keys (skylift.transport.known_hosts): a node must be in known_hosts, or have its
host_key_fingerprint here; host_key_policy "accept-new" (trust on first use) is the
operator's explicit choice, never the default.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from skylift.errors import ConfigError, UsageError
from skylift.files import write_json
from skylift.mn.agent_upgrade import DEFAULT_RESTART, NodeOps
from skylift.transport import LocalTransport
from skylift.transport.base import Transport
from skylift.transport.known_hosts import POLICIES, STRICT, check_fingerprint

REGISTRY = "nodes.json"


def registry_path(home: Path) -> Path:
    return home / "mn" / REGISTRY


@dataclass
class NodeRegistry:
    """Per-node transport and node root, as the installer or the lab recorded them."""

    nodes: dict[str, dict] = field(default_factory=dict)
    known_hosts: Path | None = None
    host_key_policy: str = STRICT

    @classmethod
    def load(cls, path: Path) -> "NodeRegistry":
        """Read the registry; an absent file is an empty registry."""
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"cannot read the node registry {path}", why=str(exc),
                              next="fix or remove the file") from None
        kh = data.get("known_hosts")
        policy = data.get("host_key_policy") or STRICT
        if policy not in POLICIES:
            raise ConfigError(f"unknown host_key_policy {policy!r} in the node registry {path}",
                              why=f"the policies are {', '.join(POLICIES)}",
                              next="fix the file")
        nodes = dict(data.get("nodes", {}))
        for uuid, entry in nodes.items():
            if entry.get("host_key_fingerprint"):
                try:
                    check_fingerprint(entry["host_key_fingerprint"])
                except UsageError as exc:
                    raise ConfigError(f"node {uuid} in the node registry {path}: {exc.what}",
                                      why=exc.why, next=exc.next) from None
        return cls(nodes, Path(kh) if kh else None, policy)

    def save(self, path: Path) -> None:
        """Write the registry atomically, mode 0600."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json(path, {"known_hosts": str(self.known_hosts) if self.known_hosts else None,
                          "host_key_policy": self.host_key_policy,
                          "nodes": self.nodes}, indent=1)

    def node_root(self, resource) -> str | None:
        entry = self.nodes.get(resource.uuid)
        return entry.get("node_root") if entry else None

    def known_hosts_path(self) -> Path:
        """The known_hosts the MN checks nodes' host keys against."""
        return self.known_hosts or Path.home() / ".ssh" / "known_hosts"

    def node_ops(self) -> NodeOps | None:
        """How the connection manager reaches the registered nodes (None: no registry)."""
        if not self.nodes:
            return None
        return _ops(lambda: self)


def live_node_ops(path: Path) -> NodeOps:
    """NodeOps over the registry at path, re-read whenever the file changes (hosts added
    while the MN runs); without the file, this machine's agents (the local transport)."""
    seen: dict = {"stamp": None, "registry": None}

    def current() -> "NodeRegistry | None":
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            return None
        if stamp != seen["stamp"]:
            seen["registry"], seen["stamp"] = NodeRegistry.load(path), stamp
        return seen["registry"]

    return _ops(current)


def _ops(current) -> NodeOps:
    local = LocalTransport()
    pools: dict = {}

    def transport_for(resource) -> Transport:
        reg = current()
        if reg is None:
            return local
        entry = reg.nodes.get(resource.uuid, {"transport": "ssh"})
        if entry.get("transport", "ssh") == "local":
            return local
        from skylift.transport.ssh import SshPool, SshTarget

        key = (reg.known_hosts_path(), reg.host_key_policy)
        if key not in pools:
            pools[key] = SshPool(key[0], host_key_policy=key[1])
        path = entry.get("key_path")
        return pools[key].transport(SshTarget(entry.get("host") or resource.address,
                                              int(entry.get("port", 22)),
                                              entry.get("user", "root"),
                                              key_path=Path(path) if path else None,
                                              host_key_fingerprint=entry.get(
                                                  "host_key_fingerprint")))

    def entry_of(resource) -> dict:
        reg = current()
        return (reg.nodes.get(resource.uuid) or {}) if reg is not None else {}

    def node_root_for(resource) -> str | None:
        return entry_of(resource).get("node_root")

    def python_for(resource, root: str) -> str | None:
        return f"{root}/agent/run" if entry_of(resource).get("service") == SKYLIFT else None

    def restart_argv(resource, root: str) -> list[str]:
        if entry_of(resource).get("service") == SKYLIFT:
            return [f"{root}/agent/run", "-m", "skylift.agent.service", "--node-root", root,
                    "restart"]
        return list(DEFAULT_RESTART)

    return NodeOps(transport_for=transport_for, node_root_for=node_root_for,
                   python_for=python_for, restart_argv=restart_argv)


SKYLIFT = "skylift"  # a node whose agent service is skylift's own (installed by host add)


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def register_node(path: Path, uuid: str, entry: dict) -> None:
    """Record (or replace) how the MN reaches one node; no secret is ever written here."""
    if "password" in entry:
        raise ValueError("a password is never stored in the node registry")
    with _locked(path):
        reg = NodeRegistry.load(path)
        reg.nodes[uuid] = entry
        reg.save(path)


def unregister_node(path: Path, uuid: str) -> dict | None:
    """Forget one node; returns what was recorded for it."""
    with _locked(path):
        reg = NodeRegistry.load(path)
        entry = reg.nodes.pop(uuid, None)
        if entry is not None:
            reg.save(path)
        return entry
