"""Processes by identity: liveness, finding, stopping, and who listens on a port (from /proc).

A pid alone is not an identity: after a crash the pid a journal recorded may belong to another
process. A ProcessId is a pid plus the process's start time (clock ticks since boot, field 22
of /proc/PID/stat), which no later process with the same pid can share.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name is in parentheses and may itself hold spaces or parentheses
    return stat[stat.rindex(b")") + 2:].split()


def parent_pid(pid: int) -> int | None:
    """The parent of a process (None when it is gone)."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def cmdline(pid: int) -> bytes:
    """The process's argv as /proc shows it (NUL-separated), b'' when it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def pid_alive(pid: int | None, marker: str | None = None) -> bool:
    """Whether pid runs (not a zombie) and, if marker is given, has it in its command line.

    The marker guards against pid reuse where no start time was recorded.
    """
    if not pid:
        return False
    fields = _stat_fields(pid)
    if not fields or fields[0] in (b"Z", b"X"):
        return False
    return marker is None or marker.encode() in cmdline(pid)


@dataclass(frozen=True)
class ProcessId:
    """A process as an identity that survives pid reuse: pid and start time."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> "ProcessId | None":
        """The identity of the running process `pid`, or None when there is none."""
        fields = _stat_fields(pid)
        if not fields or fields[0] in (b"Z", b"X"):
            return None
        return cls(pid, int(fields[19]))  # field 22 of stat; 3 is fields[0]

    @classmethod
    def from_dict(cls, data: dict) -> "ProcessId":
        return cls(int(data["pid"]), int(data["start"]))

    def to_dict(self) -> dict:
        return {"pid": self.pid, "start": self.start}

    def alive(self) -> bool:
        """Whether this very process still runs (not a zombie, not another with its pid)."""
        return ProcessId.of(self.pid) == self


def find(*markers: str) -> list[ProcessId]:
    """Running processes whose command line holds every marker, each as an argv word."""
    wanted = [m.encode() for m in markers]
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        args = cmdline(int(entry.name)).split(b"\0")
        if all(w in args for w in wanted):
            proc = ProcessId.of(int(entry.name))
            if proc is not None:
                found.append(proc)
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(gone, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not gone():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def stop(proc: ProcessId, timeout: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Send sig (SIGTERM: ask it to end), wait up to timeout, then SIGKILL; True when it had
    to be killed after the wait.

    Signals go only to this very process: a recorded pid now used by another is left alone.
    """
    if not proc.alive():
        return False
    _signal(proc.pid, sig)
    if _wait_gone(lambda: not proc.alive(), timeout):
        return False
    if proc.alive():
        _signal(proc.pid, signal.SIGKILL)
    _wait_gone(lambda: not proc.alive(), 5.0)
    return True


def terminate(pid: int, marker: str | None = None, timeout: float = 5.0,
              sig: int = signal.SIGTERM) -> None:
    """Send sig to pid (if it runs and holds marker), wait up to timeout, then SIGKILL."""
    if not pid_alive(pid, marker):
        return
    proc = ProcessId.of(pid)
    if proc is not None:
        stop(proc, timeout, sig)


def _hex_address(host: str) -> set[str]:
    """How /proc/net/tcp{,6} writes `host` (a name: each address it resolves to), and the
    wildcard addresses that also cover it."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None,
                                                                type=socket.SOCK_STREAM)}
    except OSError:
        addresses = set()
    out = {"00000000", "0" * 32}
    for address in addresses:
        if ":" in address:
            words = struct.unpack("<4I", socket.inet_pton(socket.AF_INET6, address))
            out.add("".join(f"{w:08X}" for w in words))
        else:
            out.add(f"{struct.unpack('<I', socket.inet_aton(address))[0]:08X}")
    return out


def _socket_inodes(port: int, host: str | None) -> set[str]:
    """Inodes of the TCP sockets listening on host:port (or a wildcard address; any address
    when host is None) in this network namespace."""
    addresses = _hex_address(host) if host else None
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) <= 9 or f[3] != "0A":
                continue
            address, hex_port = f[1].rsplit(":", 1)
            if int(hex_port, 16) == port and (addresses is None or address in addresses):
                inodes.add(f[9])
    return inodes


def listening_pids(port: int, host: str | None = None) -> set[int]:
    """The processes that hold a socket listening on host:port in this network namespace
    (host None: on any address; other labs may use the same port on other loopbacks)."""
    inodes = {f"socket:[{i}]" for i in _socket_inodes(port, host)}
    if not inodes:
        return set()
    pids = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) in inodes:
                        pids.add(int(entry.name))
                        break
                except OSError:
                    continue
    return pids


def other_listeners(port: int, host: str | None, pid: int,
                    listeners: set[int] | None = None) -> set[int]:
    """The processes besides `pid` listening on host:port (listeners: listening_pids, when the
    caller has it already). A child of `pid` between its fork and its exec holds a copy of
    every socket of its parent: that copy is pid's, not another listener's, and is left out."""
    if listeners is None:
        listeners = listening_pids(port, host)
    return {p for p in listeners - {pid} if parent_pid(p) != pid}
