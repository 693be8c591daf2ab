"""Facts about the machine the MN is installed on: CPUs, memory, free disk, its OS release,
whether an address:port is free, and whether an MN of this state folder already listens."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
from pathlib import Path

from skylift.mn.launch import MN_MARKER
from skylift.processes import cmdline, listening_pids

OS_RELEASE = Path("/etc/os-release")
REDHAT_RELEASE = Path("/etc/redhat-release")
EL_IDS = {"centos", "rhel", "redhat", "rocky", "almalinux", "ol", "zstack"}


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_bytes() -> int:
    """Physical memory (MemTotal of /proc/meminfo)."""
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def free_bytes(path: Path) -> tuple[Path, int]:
    """Free space for path (measured on its nearest existing folder): (that folder, bytes)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe, shutil.disk_usage(probe).free


def read_os_release(path: Path = OS_RELEASE) -> dict[str, str]:
    """/etc/os-release as a dict (empty when missing)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def detect_os_release(os_release: Path = OS_RELEASE,
                      redhat_release: Path = REDHAT_RELEASE) -> tuple[str | None, str]:
    """(skylift's name of this OS release — c74 for CentOS 7.4 — or None, what the OS says).

    An EL 7 machine's minor version is in /etc/redhat-release ("... release 7.4.1708")."""
    info = read_os_release(os_release)
    pretty = info.get("PRETTY_NAME") or info.get("NAME") or "an unknown OS"
    ids = {info.get("ID", "")} | set(info.get("ID_LIKE", "").split())
    if not ids & EL_IDS:
        return None, pretty
    version = info.get("VERSION_ID", "")
    try:
        found = re.search(r"release\s+(\d+)\.(\d+)", redhat_release.read_text())
        if found:
            version = f"{found.group(1)}.{found.group(2)}"
    except OSError:
        pass
    m = re.fullmatch(r"(\d+)\.(\d+).*", version)
    if not m:
        return None, pretty
    return f"c{m.group(1)}{m.group(2)}", pretty


def port_problem(host: str, port: int) -> str | None:
    """None when host:port could be listened on; else why not (in use, not this machine's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{host}:{port} is in use"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
        except (socket.gaierror, ValueError):
            return f"{host!r} is not an IP address"
    return None


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


def own_mn(home: Path, port: int) -> int | None:
    """The pid of an MN of this state folder listening on port (a previous, killed install
    started it), else None."""
    for pid in sorted(listening_pids(port)):
        if MN_MARKER.encode() not in cmdline(pid):
            continue
        if Path(_environ(pid).get("SKYLIFT_HOME", "/nonexistent")).absolute() == home:
            return pid
    return None
