"""The identity of a node: `node.json` in its node root (uuid, role, OS release).

A node root is the folder that holds everything a node keeps: node.json, packages.json,
volumes.json, the hypervisor's state (simd socket, VM run files) and the agent's pid and log.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import asdict, dataclass
from pathlib import Path

from skylift.agent import packages as pkgs
from skylift.agent.ids import check_package, check_uuid
from skylift.agent.store import read_json, write_json
from skylift.errors import UsageError

ROLES = ("host", "primary-storage", "backup-storage", "vrouter")
NODE_FILE = "node.json"


@dataclass(frozen=True)
class NodeInfo:
    """What node.json records about a node."""

    uuid: str
    role: str
    os_release: str


def check_role(role: str) -> str:
    """The role, or a UsageError listing the valid ones."""
    if role not in ROLES:
        raise UsageError(f"unknown agent role '{role}'", why="an agent serves one node kind",
                         next=f"use one of: {', '.join(ROLES)}")
    return role


def read_node(node_root: Path) -> NodeInfo | None:
    """The node's identity, or None when the node root was never initialised."""
    data = read_json(Path(node_root) / NODE_FILE)
    if not data or "role" not in data:  # absent, or only the OS recorded by the repo tool
        return None
    return NodeInfo(uuid=data["uuid"], role=data["role"],
                    os_release=data.get("os_release") or data.get("os", ""))


def init_node(
    node_root: Path,
    role: str,
    os_release: str = "c76",
    packages: dict[str, str] | None = None,
    uuid: str | None = None,
) -> NodeInfo:
    """Create (or keep) a node root: node.json, and packages.json when packages are given.

    An existing node.json is kept as it is (a node's uuid never changes); a different role is
    refused because one node root belongs to one agent kind.
    """
    node_root = Path(node_root)
    check_role(role)
    if uuid is not None:
        check_uuid(uuid, "node")
    for name, version in (packages or {}).items():
        check_package(name, version)
    node_root.mkdir(parents=True, exist_ok=True)
    existing = read_node(node_root)
    if existing is not None:
        if existing.role != role:
            raise UsageError(
                f"node root {node_root} belongs to a {existing.role} agent, not {role}",
                why="one node root holds the state of one node",
                next=f"use --role {existing.role} or another --node-root")
        info = existing
    else:
        # keep what others recorded (skylift.repo writes {"os": ...}); "os" mirrors os_release
        # because the local repository reads that key
        data = read_json(node_root / NODE_FILE, {}) or {}
        os_release = data.get("os_release") or data.get("os") or os_release
        info = NodeInfo(uuid=uuid or uuidlib.uuid4().hex, role=role, os_release=os_release)
        write_json(node_root / NODE_FILE, {**data, **asdict(info), "os": os_release})
    if packages:
        current = pkgs.read_packages(node_root)
        pkgs.write_packages(node_root, {**current, **packages})
    return info
