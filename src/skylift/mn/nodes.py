"""The node registry: how the MN reaches each node to upgrade its agent and packages.

A deployment (or the lab) writes $SKYLIFT_HOME/mn/nodes.json (0600) once nodes are installed:

    {"known_hosts": "/path/known_hosts", "host_key_policy": "strict",
     "nodes": {"<uuid>": {"transport": "local", "node_root": "/var/lib/skylift/node"},
               "<uuid>": {"transport": "ssh", "host": "127.0.3.7", "port": 2222,
                          "user": "root", "key_path": "/path/key", "node_root": "/...",
                          "host_key_fingerprint": "SHA256:..."}}}

A node missing from the registry is reached over SSH on its management address with the
defaults of a real node. No password is ever stored here (ssh keys, or SKYLIFT_SSH_PASSWORD).
Host keys (skylift.transport.known_hosts): a node must be in known_hosts, or have its
host_key_fingerprint here; host_key_policy "accept-new" (trust on first use) is the
operator's explicit choice, never the default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from skylift.errors import ConfigError, UsageError
from skylift.files import write_json
from skylift.mn.agent_upgrade import NodeOps
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

    def node_ops(self) -> NodeOps | None:
        """How the connection manager reaches the registered nodes (None: no registry)."""
        if not self.nodes:
            return None
        local = LocalTransport()
        pool = None

        def transport_for(resource) -> Transport:
            nonlocal pool
            entry = self.nodes.get(resource.uuid, {"transport": "ssh"})
            if entry.get("transport", "ssh") == "local":
                return local
            from skylift.transport.ssh import SshPool, SshTarget

            if pool is None:
                pool = SshPool(self.known_hosts or Path.home() / ".ssh" / "known_hosts",
                               host_key_policy=self.host_key_policy)
            key = entry.get("key_path")
            return pool.transport(SshTarget(entry.get("host") or resource.address,
                                            int(entry.get("port", 22)),
                                            entry.get("user", "root"),
                                            key_path=Path(key) if key else None,
                                            host_key_fingerprint=entry.get(
                                                "host_key_fingerprint")))

        return NodeOps(transport_for=transport_for, node_root_for=self.node_root)
