"""Starting, stopping and restarting agents as processes: for the management node and the lab.

An agent runs `python -m skylift.agent serve ...` in its own session (so a signal to its
starter does not reach it) and logs to NODE_ROOT/agent.log. Stopping an agent never touches
the VMs: they belong to the hypervisor (see skylift.agent.hypervisor).

An agent is started without the secrets of whoever starts it (agent_env): an MN or a lab run
holds the database password in its environment, and neither the agent nor anything it starts
(the hypervisor, VM processes) may inherit it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from skylift.agent.client import AgentClient
from skylift.agent.hypervisor.daemon import log_tail
from skylift.processes import pid_alive, terminate
from skylift.agent.server import AGENT_FILE
from skylift.agent.store import read_json
from skylift.errors import AgentError, SkyliftError
from skylift.agent.wire import agent_url
from skylift.pki.trust import AgentTrust, node_tls_files
from skylift.secrets import without_secrets

AGENT_MARKER = "skylift.agent\x00serve"  # argv as in /proc/PID/cmdline

def agent_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment to start an agent (or any node-side process) with: this process's
    (or environ), without the secrets it holds for itself."""
    return without_secrets(environ)


@dataclass
class AgentHandle:
    """A running agent: where it listens and which process it is."""

    node_root: Path
    role: str
    host: str
    port: int
    driver: str
    pid: int
    os_release: str = "c76"
    token_file: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    # how its starter talks to it, once it serves TLS (None: plain HTTP only)
    trust: AgentTrust | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        return agent_url(self.host, self.port)

    def alive(self) -> bool:
        """Whether the agent process still runs."""
        if self.popen is not None and self.popen.poll() is not None:
            return False
        return pid_alive(self.pid, AGENT_MARKER)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on host right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def agent_argv(node_root: Path, role: str, host: str, port: int, driver: str, os_release: str,
               python: list[str] | None = None) -> list[str]:
    """The agent's command line (python: how to run python, this process's by default; an
    installed node's is its launcher NODE_ROOT/agent/run)."""
    return [*(python or [sys.executable]), "-m", "skylift.agent", "serve", "--role", role,
            "--node-root", str(node_root), "--port", str(port), "--host", host,
            "--driver", driver, "--os-release", os_release]


def start_agent(node_root: Path, role: str, host: str = "127.0.0.1", port: int = 0,
                driver: str = "sim", *, os_release: str = "c76",
                token_file: Path | None = None, timeout: float = 20.0,
                trust: AgentTrust | None = None) -> AgentHandle:
    """Start an agent detached and return once GET /v1/health answers (port 0: pick a free one).

    An agent holding a certificate answers only a client with the MN's: without `trust` its
    start is seen by its port accepting connections instead."""
    node_root = Path(node_root).resolve()
    node_root.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    argv = agent_argv(node_root, role, host, port, driver, os_release)
    if token_file is not None:
        argv += ["--token-file", str(token_file)]
    return start_argv(argv, node_root, role, host, port, driver, os_release=os_release,
                      token_file=token_file, timeout=timeout, trust=trust)


def start_argv(argv: list[str], node_root: Path, role: str, host: str, port: int, driver: str,
               *, os_release: str = "c76", token_file: Path | None = None,
               timeout: float = 20.0, trust: AgentTrust | None = None) -> AgentHandle:
    """Start the agent command argv detached (own session, stdin /dev/null, NODE_ROOT/agent.log,
    no secrets) and return once it answers on host:port (its port, for a TLS agent and no
    trust); stopped again and AgentError when it exits or stays silent."""
    log_path = node_root / "agent.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, cwd="/", env=agent_env())
    handle = AgentHandle(node_root, role, host, port, driver, popen.pid, os_release,
                         token_file, popen, trust)
    deadline = time.monotonic() + timeout
    by_port = trust is None and node_tls_files(node_root) is not None
    with AgentClient(handle, timeout=1.0, trust=trust) as agent:
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise AgentError(f"the {role} agent of {node_root.name} exited at start "
                                 f"(status {popen.returncode})",
                                 why=log_tail(log_path), next=f"read {log_path}")
            try:
                if by_port:
                    if _listening(host, port):
                        return handle
                else:
                    agent.health()
                    return handle
            except SkyliftError:  # not listening yet, or not answering as an agent yet
                pass
            time.sleep(0.05)
    stop_agent(handle, timeout=2.0)
    raise AgentError(f"the {role} agent of {node_root.name} did not answer on {handle.url}",
                     why=f"no health answer within {timeout:.0f}s; {log_tail(log_path)}",
                     next=f"read {log_path}")


def find_agent(node_root: Path, trust: AgentTrust | None = None) -> AgentHandle | None:
    """The agent serving node_root (from its agent.json), if it still runs."""
    node_root = Path(node_root).resolve()
    info = read_json(node_root / AGENT_FILE)
    if not info or not pid_alive(info.get("pid"), AGENT_MARKER):
        return None
    return AgentHandle(node_root, info["role"], info["host"], info["port"], info["driver"],
                       info["pid"], trust=trust)


def stop_agent(handle: AgentHandle, timeout: float = 10.0) -> None:
    """Stop the agent gracefully (SIGTERM, then SIGKILL after timeout); VMs keep running."""
    _end(handle, signal.SIGTERM, timeout)


def kill_agent(handle: AgentHandle) -> None:
    """Kill the agent with SIGKILL, as a crash would (VMs keep running)."""
    _end(handle, signal.SIGKILL, 5.0)


def restart_agent(handle: AgentHandle, timeout: float = 20.0) -> AgentHandle:
    """Stop the agent and start it again on the same address, driver and node root.

    A restarted agent reads the node's package database afresh, so it reports the
    skylift-agent version installed now: this is how an agent upgrade takes effect.
    """
    if handle.alive():
        stop_agent(handle)
    else:
        _reap(handle)
    return start_agent(handle.node_root, handle.role, handle.host, handle.port, handle.driver,
                       os_release=handle.os_release, token_file=handle.token_file,
                       timeout=timeout, trust=handle.trust)


def _end(handle: AgentHandle, sig: int, timeout: float) -> None:
    # the marker keeps a recorded pid that another program took over from being signalled
    terminate(handle.pid, AGENT_MARKER, timeout, sig=sig)
    _reap(handle)


def _reap(handle: AgentHandle) -> None:
    # our own child must be waited for, or it stays a zombie for as long as we run
    if handle.popen is not None:
        try:
            handle.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

