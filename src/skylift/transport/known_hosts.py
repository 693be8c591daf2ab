"""Trust on first use for SSH host keys, kept in an OpenSSH known_hosts file.

The first connection to HOST:PORT records the key the node showed; every later connection
must show that same key, or it is refused with HostKeyChanged before anything is sent.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from skylift.errors import HostKeyChanged
from skylift.files import write_atomic


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
    write_atomic(path, "".join(f"{ln}\n" for ln in kept).encode())
    return True


class PinnedKeys:
    """The pinned keys of one known_hosts file, parsed once and re-read only when it changes.

    A pool connecting to thousands of nodes must not re-read and re-parse the whole file for
    every connection: that made a 10,000-node rollout quadratic.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._keys: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        keys: dict[str, str] = {}
        for line in _entries(self.path):
            if not line.strip() or line.startswith("#"):
                continue
            names, _, key = line.partition(" ")
            for name in names.split(","):
                keys.setdefault(name, key.strip())
        self._keys, self._stamp = keys, stamp

    def get(self, host: str, port: int) -> str | None:
        """The pinned key line ("ssh-ed25519 AAAA...") of host:port, or None."""
        self._refresh()
        return self._keys.get(host_pattern(host, port))

    def pin(self, host: str, port: int, key_line: str) -> str:
        """Pin key_line for host:port unless a key is pinned already; returns the pinned key."""
        name = host_pattern(host, port)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)  # another process may pin the same node
            self._refresh()
            if name not in self._keys:
                fh.write(f"{name} {key_line}\n")
                fh.flush()
                os.fsync(fh.fileno())
                self._keys[name] = key_line
                self._stamp = self._stat()
            return self._keys[name]


def changed_error(path: Path, host: str, port: int) -> HostKeyChanged:
    """The refusal shown when a node's host key is not the pinned one."""
    name = host_pattern(host, port)
    return HostKeyChanged(
        f"the SSH host key of {name} has changed; refusing to connect",
        why=f"{path} pins another key for it: the node was reinstalled or re-keyed, "
            "or someone is in the middle",
        next=f"if you know the node was re-keyed, remove the old key with "
             f"`ssh-keygen -R '{name}' -f {path}` and connect again")
