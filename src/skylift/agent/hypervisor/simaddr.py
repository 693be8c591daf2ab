"""Where a node's sim hypervisor daemon listens: a unix socket in the node root.

Unix socket paths are limited to 107 bytes; a deep node root (pytest's tmp folders, lab
installations) falls back to a Linux abstract socket named after the node root's path.

A node root may instead point at a shared daemon (sim.json: {"root": DAEMON_ROOT}) so that a
lab farm of thousands of simulated nodes runs one hypervisor process, not thousands; each
request then names its node root and the daemon keeps every node's VMs apart.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SOCKET_NAME = "simd.sock"
PIDFILE = "simd.pid"
SHARED_FILE = "sim.json"


def daemon_root(node_root: Path) -> Path:
    """The folder of the sim daemon serving node_root: its own, or the shared one it names."""
    node_root = Path(node_root).resolve()
    try:
        return Path(json.loads((node_root / SHARED_FILE).read_text())["root"]).resolve()
    except (FileNotFoundError, ValueError, KeyError):
        return node_root


def use_shared_daemon(node_root: Path, shared_root: Path) -> None:
    """Make node_root's VMs live in the sim daemon of shared_root (set before the first VM)."""
    node_root = Path(node_root)
    node_root.mkdir(parents=True, exist_ok=True)
    (node_root / SHARED_FILE).write_text(json.dumps({"root": str(Path(shared_root).resolve())}))


def simd_address(node_root: Path) -> str:
    """The address to connect to for the node's sim daemon (or to bind, for the daemon)."""
    path = str(daemon_root(node_root) / SOCKET_NAME)
    if len(path.encode()) < 100:
        return path
    digest = hashlib.sha256(path.encode()).hexdigest()[:24]
    return f"\0skylift-simd-{digest}"
