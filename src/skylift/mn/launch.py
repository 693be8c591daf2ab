"""Starting and stopping management nodes as processes: for procedures, the lab and tests.

An MN runs `python -m skylift.mn serve ...` in its own session and logs to
$SKYLIFT_HOME/mn/mn-<port>.log. The database password never goes on its command line: a
password in the URL is moved to SKYLIFT_DB_PASSWORD in the child's environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from skylift.agent.hypervisor.daemon import log_tail
from skylift.config import skylift_home
from skylift.db.engine import PASSWORD_ENV, split_password
from skylift.errors import OperationFailed
from skylift.mn.auth import bearer_headers, read_token, token_path
from skylift.mn.https import client_verify
from skylift.mn.server import GO_ENV, READY_ENV
from skylift.processes import pid_alive, terminate

MN_MARKER = "skylift.mn\x00serve"  # argv as in /proc/PID/cmdline


@dataclass
class MnHandle:
    """A running management node: where it listens, which process, its log."""

    pid: int
    host: str
    port: int
    mode: str
    release: str
    log_path: Path
    home: Path
    popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    instance: str | None = None  # the MN's identity (its heartbeat uuid)
    scheme: str = "http"  # https when it serves TLS (skylift.mn.https)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def alive(self) -> bool:
        """Whether the MN process still runs."""
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid, MN_MARKER)

    def token(self) -> str:
        """The admin token of this MN's state folder."""
        return read_token(token_path(self.home))

    def client(self, timeout: float = 10.0) -> httpx.Client:
        """An httpx client on this MN with the admin token."""
        return mn_client(self.url, self.token(), timeout, home=self.home)


def mn_client(url: str, token: str | None, timeout: float = 10.0,
              home: Path | None = None) -> httpx.Client:
    """An httpx client on the MN at url that sends the admin token (if given); over HTTPS it
    trusts the cloud's CA of the state folder `home` (default this process's) too."""
    return httpx.Client(base_url=url, timeout=timeout, headers=bearer_headers(token),
                        verify=client_verify(url, home or skylift_home()))


def mn_argv(db_url: str, *, port: int, host: str = "127.0.0.1", maintenance: bool = False,
            password_file: Path | None = None, release: str | None = None,
            node_root: Path | None = None, agent_port: int | None = None,
            instance: str | None = None, tls: str | None = None,
            share_hosts: bool = False) -> list[str]:
    """The command line of an MN: what start_mn runs, and a service unit's ExecStart
    (skylift.install), so the two never differ. db_url must hold no password. share_hosts:
    one of several MNs sharing the cloud (skylift.mn.ownership)."""
    if split_password(db_url)[1] is not None:
        raise ValueError("the MN's command line never carries the database password")
    argv = [sys.executable, "-m", "skylift.mn", "serve", "--db", db_url, "--host", host,
            "--port", str(port)]
    if maintenance:
        argv.append("--maintenance")
    if password_file is not None:
        argv += ["--password-file", str(password_file)]
    if release:
        argv += ["--release", release]
    if node_root is not None:
        argv += ["--node-root", str(node_root)]
    if agent_port is not None:
        argv += ["--agent-port", str(agent_port)]
    if instance is not None:
        argv += ["--instance", instance]
    if tls is not None:
        argv += ["--tls", tls]
    if share_hosts:
        argv.append("--share-hosts")
    return argv


@dataclass
class MnStart:
    """An MN process started, not yet known ready (see spawn_mn and await_mn)."""

    popen: subprocess.Popen
    host: str
    port: int
    log_path: Path
    home: Path
    ready: Path  # the file it writes once it listens
    go: Path | None  # a standby MN serves once this file exists (None: not a standby)
    reach_at: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid


def start_mn(db_url: str, *, port: int, host: str = "127.0.0.1", maintenance: bool = False,
             password_file: Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 30.0, release: str | None = None, node_root: Path | None = None,
             agent_port: int | None = None, instance: str | None = None,
             tls: str | None = None, share_hosts: bool = False,
             wrap: list[str] | None = None, reach_at: str | None = None) -> MnHandle:
    """Start an MN and return once it listens and answers (raises OperationFailed if not).

    wrap: a command the MN's is run through that execs it (`ip netns exec NS`: an MN on a
    lab node's own network), so the process started is the MN itself. reach_at: the address
    clients use when host is a wildcard (an HA MN listens on every address of its node: its
    own, and the VIP while it holds it).

    Readiness is the MN's own ready file, not any answer on the port: with SO_REUSEPORT the
    previous MN may be answering there too. instance: the identity to give it (32 hex; it
    is on its command line, so the process can be found again after a crash of the caller).
    """
    started = spawn_mn(db_url, port=port, host=host, maintenance=maintenance,
                       password_file=password_file, env=env, release=release,
                       node_root=node_root, agent_port=agent_port, instance=instance, tls=tls,
                       share_hosts=share_hosts, wrap=wrap, reach_at=reach_at)
    return await_mn(started, timeout)


def spawn_mn(db_url: str, *, port: int, host: str = "127.0.0.1", maintenance: bool = False,
             password_file: Path | None = None, env: dict[str, str] | None = None,
             release: str | None = None, node_root: Path | None = None,
             agent_port: int | None = None, instance: str | None = None,
             tls: str | None = None, share_hosts: bool = False,
             wrap: list[str] | None = None, reach_at: str | None = None,
             standby: bool = False) -> MnStart:
    """Start an MN process (the options of start_mn) and return at once.

    standby: the process loads its code, then waits until await_mn tells it to serve: its
    start-up costs are paid before the moment it is needed (the new MN of an upgrade, while
    the database is still being migrated)."""
    child_env = dict(os.environ)
    child_env.update(env or {})
    db_url, password = split_password(db_url)
    if password is not None:  # never on the command line
        child_env[PASSWORD_ENV] = password
    home = Path(child_env["SKYLIFT_HOME"]) if child_env.get("SKYLIFT_HOME") else skylift_home()
    (home / "mn").mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = home / "mn" / f"mn-{port}.log"
    folder = Path(tempfile.mkdtemp(prefix="mn-ready-", dir=home / "mn"))
    ready, go = folder / "ready.json", (folder / "go" if standby else None)
    child_env[READY_ENV] = str(ready)
    child_env.pop(GO_ENV, None)
    if go is not None:
        child_env[GO_ENV] = str(go)
    argv = mn_argv(db_url, port=port, host=host, maintenance=maintenance,
                   password_file=password_file, release=release, node_root=node_root,
                   agent_port=agent_port, instance=instance, tls=tls,
                   share_hosts=share_hosts)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen([*(wrap or []), *argv], stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=log, env=child_env, start_new_session=True, cwd="/")
    return MnStart(popen, host, port, log_path, home, ready, go, reach_at)


def await_mn(started: MnStart, timeout: float = 30.0) -> MnHandle:
    """Tell a standby MN to serve, then wait until it listens and answers (raises
    OperationFailed if it does not within timeout, and then kills it)."""
    popen, ready, port, log_path = started.popen, started.ready, started.port, started.log_path
    if started.go is not None:
        started.go.touch()
    deadline = time.monotonic() + timeout
    try:
        while not ready.exists():
            if popen.poll() is not None:
                raise OperationFailed(f"the management node on port {port} exited at start "
                                      f"(status {popen.returncode})",
                                      why=log_tail(log_path), next=f"read {log_path}")
            if time.monotonic() > deadline:
                popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=5.0)
                raise OperationFailed(f"the management node on port {port} did not start "
                                      f"within {timeout:.0f}s", why=log_tail(log_path),
                                      next=f"read {log_path}")
            time.sleep(0.02)
        info = json.loads(ready.read_text())
    finally:
        shutil.rmtree(ready.parent, ignore_errors=True)
    handle = MnHandle(popen.pid, started.reach_at or started.host, port, info["mode"],
                      info["release"], log_path, started.home, popen, info.get("instance"),
                      info.get("scheme", "http"))
    wait_ready(handle.url, timeout=max(1.0, deadline - time.monotonic()), home=started.home)
    return handle


def wait_ready(url: str, timeout: float = 30.0, home: Path | None = None) -> dict:
    """Wait until an MN answers GET /v1/version at url; returns the answer."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with mn_client(url, None, 2.0, home=home) as client:
                resp = client.get("/v1/version")
            if resp.status_code == 200:
                return resp.json()
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            raise OperationFailed(f"no management node answers at {url}", why=last,
                                  next="check that it runs and listens on that address")
        time.sleep(0.05)


def stop_mn(handle: MnHandle, timeout: float = 40.0) -> int | None:
    """Stop an MN gracefully (SIGTERM: drain, heartbeat 'stopped'); SIGKILL after timeout.

    Returns the exit status when the MN is our child.
    """
    return _end(handle, signal.SIGTERM, timeout)


def kill_mn(handle: MnHandle) -> None:
    """Kill an MN with SIGKILL, as a crash would (its heartbeat goes stale, not 'stopped')."""
    _end(handle, signal.SIGKILL, 5.0)


def _end(handle: MnHandle, sig: int, timeout: float) -> int | None:
    # the marker keeps a recorded pid that another program took over from being signalled
    terminate(handle.pid, MN_MARKER, timeout, sig=sig)
    if handle.popen is not None:
        try:
            return handle.popen.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            return None
    return None
