"""Starting detached daemons (VM processes, the sim hypervisor) and reading their logs.

A daemon is started with a readiness pipe: the launched process forks, the parent exits at
once (so nobody has to reap the daemon: it is re-parented to init and outlives whoever
started it, the agent included), and the child writes one JSON line to the pipe once it is
serving. The starter waits for that line, so "started" always means "answering".
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from skylift.errors import HypervisorError


def spawn_daemon(module: str, args: list[str], log_path: Path, timeout: float = 10.0) -> dict:
    """Run `python -m module args --ready-fd N` detached; the ready line it wrote, as a dict."""
    read_fd, write_fd = os.pipe()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--ready-fd", str(write_fd)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,),
            start_new_session=True, cwd="/",
        )
    os.close(write_fd)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                break
            chunk = os.read(read_fd, 4096)
            if not chunk:  # the daemon died before it was ready
                break
            data += chunk
    finally:
        os.close(read_fd)
        try:
            proc.wait(timeout=5)  # the first process exits right after forking
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if b"\n" not in data:
        raise HypervisorError(
            f"{module} did not start",
            why=f"no ready signal within {timeout:.0f}s; {log_tail(log_path)}",
            next=f"read {log_path}")
    return json.loads(data.split(b"\n", 1)[0])


def daemonize_and_ready(ready_fd: int | None):
    """In the launched process: fork; the parent exits, the child gets a function to signal ready."""
    if ready_fd is not None and os.fork() > 0:
        os._exit(0)

    def ready(info: dict) -> None:
        if ready_fd is not None:
            os.write(ready_fd, (json.dumps(info) + "\n").encode())
            os.close(ready_fd)

    return ready


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a daemon's log, on one line, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "no log"
    return "last log lines: " + (" | ".join(text) or "(empty)")
