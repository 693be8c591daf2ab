"""Probing a VM: ask the VM itself (not the agent) for its boot id.

Endpoints are strings so they travel through the API and the lab unchanged:
  tcp://HOST:PORT       a VM process of the `process` driver answers one JSON line
  sim://NODE_ROOT#UUID  the sim hypervisor daemon of that node answers for its VM
A probe that gets no answer returns None; it never raises for an unreachable VM.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

from skylift.agent.hypervisor.simaddr import simd_address


def probe(endpoint: str, timeout: float = 1.0) -> str | None:
    """The boot id the VM at endpoint answers with, or None when it does not answer."""
    try:
        if endpoint.startswith("tcp://"):
            host, _, port = endpoint[len("tcp://"):].rpartition(":")
            with socket.create_connection((host, int(port)), timeout=timeout) as sock:
                return json.loads(_read_line(sock)).get("boot_id")
        if endpoint.startswith("sim://"):
            root, _, uuid = endpoint[len("sim://"):].partition("#")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(simd_address(Path(root)))
                req = {"op": "probe", "uuid": uuid, "node": root}
                sock.sendall(json.dumps(req).encode() + b"\n")
                return json.loads(_read_line(sock)).get("boot_id")
    except (OSError, ValueError):
        return None
    raise ValueError(f"unknown probe endpoint {endpoint!r}")


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]
