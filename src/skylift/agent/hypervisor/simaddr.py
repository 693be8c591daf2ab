"""Where a node's sim hypervisor daemon listens: a unix socket in the node root.

Unix socket paths are limited to 107 bytes; a deep node root (pytest's tmp folders, lab
installations) falls back to a Linux abstract socket named after the node root's path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

SOCKET_NAME = "simd.sock"
PIDFILE = "simd.pid"


def simd_address(node_root: Path) -> str:
    """The address to bind or connect to for the node's sim daemon."""
    path = str(Path(node_root).resolve() / SOCKET_NAME)
    if len(path.encode()) < 100:
        return path
    digest = hashlib.sha256(path.encode()).hexdigest()[:24]
    return f"\0skylift-simd-{digest}"
