"""Trust on first use for SSH host keys, kept in an OpenSSH known_hosts file.

The first connection to HOST:PORT records the key the node showed; every later connection
must show that same key, or it is refused with HostKeyChanged before anything is sent.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from skylift.errors import HostKeyChanged


def host_pattern(host: str, port: int) -> str:
    """The known_hosts name of a node, as OpenSSH writes it ([host]:port unless port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def _entries(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def is_known(path: Path, host: str, port: int) -> bool:
    """Whether a key is pinned for host:port."""
    name = host_pattern(host, port)
    return any(name in line.split(None, 1)[0].split(",") for line in _entries(path)
               if line.strip() and not line.startswith("#"))


def record(path: Path, host: str, port: int, key_line: str) -> None:
    """Pin key_line ("ssh-ed25519 AAAA...") for host:port (appended under a lock, fsynced)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if not is_known(path, host, port):  # two first connects must not pin two keys
            fh.write(f"{host_pattern(host, port)} {key_line}\n")
            fh.flush()
            os.fsync(fh.fileno())


def forget(path: Path, host: str, port: int) -> bool:
    """Remove the pinned key of host:port (after a node was really reinstalled)."""
    name = host_pattern(host, port)
    lines = _entries(path)
    kept = [ln for ln in lines if not (ln.strip() and name in ln.split(None, 1)[0].split(","))]
    if len(kept) == len(lines):
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{ln}\n" for ln in kept))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True


def changed_error(path: Path, host: str, port: int) -> HostKeyChanged:
    """The refusal shown when a node's host key is not the pinned one."""
    name = host_pattern(host, port)
    return HostKeyChanged(
        f"the SSH host key of {name} has changed; refusing to connect",
        why=f"{path} pins another key for it: the node was reinstalled or re-keyed, "
            "or someone is in the middle",
        next=f"if you know the node was re-keyed, remove the old key with "
             f"`ssh-keygen -R '{name}' -f {path}` and connect again")
