"""An agent handing its listening socket to its successor: an upgrade without a restart gap.

A self-upgrading agent (skylift.agent.self_upgrade) that runs detached (no systemd) starts
the newly installed agent itself and gives it the very listening socket it serves on (an
inherited file descriptor, SKYLIFT_AGENT_LISTEN_FD). The successor serves on it, then says
so on a pipe (SKYLIFT_AGENT_READY_FD) with its version document; only then does the old
agent stop accepting, answer the MN's order with that document, and exit once its open
requests are done. The port never stops accepting: a connection made meanwhile waits in the
socket's queue for whichever agent accepts it. And the MN learns the new version in the
answer to its order, with no second connection (and TLS handshake) to the restarted agent.

Where the agent runs under systemd, the unit's main process must stay the one systemd
started, so the agent restarts as before. A successor that does not come up is stopped,
and the caller falls back to that restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from skylift.errors import AgentError

LISTEN_FD_ENV = "SKYLIFT_AGENT_LISTEN_FD"
READY_FD_ENV = "SKYLIFT_AGENT_READY_FD"
BACKLOG = 2048  # an MN reconnecting thousands of agents: a short queue would refuse some
READY_LIMIT = 1 << 16  # a version document is a few hundred bytes


class HandoverFailed(AgentError):
    """The successor did not come up on the inherited socket (it was stopped again)."""


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket to serve on: the one inherited from the agent handing over, or a new one
    bound to host:port."""
    fd = os.environ.pop(LISTEN_FD_ENV, None)
    if fd is not None:
        sock = socket.socket(fileno=int(fd))
        bound = sock.getsockname()[:2]
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        if not listening or bound[1] != port:
            sock.close()
            raise AgentError(f"the inherited socket does not listen on port {port}",
                             why=f"it is bound to {bound[0]}:{bound[1]}, listening: "
                                 f"{bool(listening)}",
                             next="start the agent without SKYLIFT_AGENT_LISTEN_FD")
        return sock
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def announce(doc: dict) -> None:
    """Tell the agent that handed over (if one did) that this one serves, and what it is."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    with open(int(fd), "wb", closefd=True) as pipe:
        pipe.write(json.dumps(doc).encode() + b"\n")


@dataclass
class Listener:
    """What an agent process serves with: its socket and the uvicorn server on it."""

    sock: socket.socket
    server: object  # uvicorn.Server
    loop: asyncio.AbstractEventLoop | None = field(default=None)

    def stop_accepting(self, timeout: float = 5.0) -> None:
        """Stop accepting on this process's copy of the socket (from another thread); the
        socket stays open in the successor, which accepts from now on."""
        async def close() -> None:
            for srv in getattr(self.server, "servers", []):
                srv.close()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout)

    def exit_when_idle(self) -> None:
        """End this process once its open requests are answered (uvicorn's graceful exit)."""
        self.server.should_exit = True


def hand_over(listener: Listener, argv: list[str], env: dict[str, str], log_path: Path,
              timeout: float = 30.0) -> dict:
    """Start argv on the listener's socket; once it announces itself, stop accepting here and
    return its document. HandoverFailed (the successor stopped, this agent still serving)
    when it exits or stays silent for timeout seconds."""
    read_end, write_end = os.pipe()
    fd = listener.sock.fileno()
    env = {**env, LISTEN_FD_ENV: str(fd), READY_FD_ENV: str(write_end)}
    try:
        with open(log_path, "ab") as log:
            successor = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, cwd="/", env=env,
                                         pass_fds=(fd, write_end))
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise HandoverFailed("the new agent could not be started", why=str(exc),
                             next=f"read {log_path}") from exc
    os.close(write_end)  # ours: the pipe ends (EOF) when the successor closes or exits
    try:
        doc = _read_announcement(read_end, successor, timeout)
    except HandoverFailed:
        _stop(successor)
        raise
    finally:
        os.close(read_end)
    try:
        listener.stop_accepting()
    except (TimeoutError, RuntimeError):  # this agent's exit closes its copy all the same
        pass
    return doc


def _read_announcement(fd: int, successor: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise HandoverFailed("the new agent did not come up", why=f"no word within "
                                 f"{timeout:.0f} s", next="read the node's agent.log")
        if not select.select([fd], [], [], min(left, 0.5))[0]:
            continue
        chunk = os.read(fd, READY_LIMIT)
        if not chunk:
            status = successor.poll()
            raise HandoverFailed("the new agent exited before serving",
                                 why=f"exit status {status}" if status is not None
                                 else "it closed its end of the pipe",
                                 next="read the node's agent.log")
        data += chunk
        if len(data) > READY_LIMIT:
            raise HandoverFailed("the new agent's announcement is too long",
                                 why=f"more than {READY_LIMIT} bytes", next="read its code")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise HandoverFailed("the new agent's announcement is not JSON", why=str(exc),
                             next="read the node's agent.log") from exc


def _stop(successor: subprocess.Popen) -> None:
    """Stop the successor this agent started (its own child: by its Popen, not by a pid)."""
    if successor.poll() is None:
        successor.terminate()
        try:
            successor.wait(timeout=5)
        except subprocess.TimeoutExpired:
            successor.kill()
            successor.wait(timeout=5)


def serve_announced(server, sock: socket.socket, on_started: Callable[[], None],
                    loop_factory=None) -> None:
    """Serve uvicorn's server on sock until it exits; on_started runs once it accepts."""
    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                break
            await asyncio.sleep(0.01)
        if server.started:
            on_started()
        await task

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
