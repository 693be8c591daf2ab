"""Running a management node: pick the mode, bind the shared socket, serve until SIGTERM.

SIGTERM drains: the MN stops accepting connections, finishes the calls in flight, stops its
connection manager, writes heartbeat state 'stopped' and exits 0.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import time
from pathlib import Path

import uvicorn

from skylift.config import skylift_home
from skylift.db.engine import PASSWORD_ENV, Database
from skylift.files import write_json
from skylift.mn import listen
from skylift.mn.auth import ensure_token, token_path
from skylift.mn.heartbeat import Heartbeat
from skylift.mn.https import server_files, wants_tls
from skylift.mn.mode import detect
from skylift.mn.state import MnState

log = logging.getLogger("skylift.mn")
READY_ENV = "SKYLIFT_MN_READY_FILE"  # process.start_mn waits for this file
# A standby MN (launch.spawn_mn(standby=True)) loads its code, then waits for this file before
# it reads its mode from the database and listens; one never told leaves after STANDBY_LIMIT.
GO_ENV = "SKYLIFT_MN_GO_FILE"
STANDBY_LIMIT = 900.0
GRACE = 30.0  # seconds the calls in flight get to finish after SIGTERM


def build_state(db: Database, *, maintenance: bool = False, release: str | None = None,
                node_root: Path | None = None, agent_port: int | None = None,
                instance: str | None = None, share_hosts: bool = False) -> MnState:
    """The MN's state: mode from the database, admin token, heartbeat (not started yet)."""
    run = detect(db, maintenance=maintenance, release_override=release)
    engine = db.engine()
    mn = MnState(db=db, engine=engine, run=run, token=ensure_token(), token_file=token_path(),
                 node_root=Path(node_root) if node_root else skylift_home() / "node",
                 agent_port=agent_port, share_hosts=share_hosts)
    mn.heartbeat = Heartbeat(engine, version=run.release,
                             state="maintenance" if run.maintenance else "running",
                             uuid=instance)
    return mn


def serve(db: Database, *, host: str = "127.0.0.1", port: int = 8080, maintenance: bool = False,
          release: str | None = None, node_root: Path | None = None,
          agent_port: int | None = None, instance: str | None = None,
          tls: str = "auto", tls_files: tuple[Path, Path] | None = None,
          share_hosts: bool = False) -> None:
    """Serve the MN API on host:port until SIGTERM/SIGINT (blocks).

    instance: this MN's identity (32 hex), chosen by whoever starts it so that it can find
    and stop exactly this process later; also the uuid of its heartbeat row. tls: auto (HTTPS
    off loopback), on or off; tls_files: the operator's certificate and key (default: one the
    cloud's CA issues, see skylift.mn.https). share_hosts: one of several MNs on this
    database, each driving its share of the resources (skylift.mn.ownership).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # the libraries log a line per request (httpx) and several per SSH session (asyncssh):
    # in a storm of thousands of nodes that buries everything else
    for noisy in ("httpx", "httpcore", "asyncssh"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _stand_by()
    mn = build_state(db, maintenance=maintenance, release=release, node_root=node_root,
                     agent_port=agent_port, instance=instance, share_hosts=share_hosts)
    log.info("management node %s starting in %s mode (%s) on %s:%d", mn.run.release,
             mn.run.mode, mn.run.reason, host, port)
    if wants_tls(tls, host):
        cert, key = tls_files or server_files(skylift_home(), host)
        mn.tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    sock = listen.bind_socket(host, port)
    try:
        _event_loop_runner()(_run(mn, sock, host, port))
    finally:
        sock.close()
        mn.engine.dispose()


def _stand_by() -> None:
    """As a standby MN: load the app's code, then wait to be told to serve (GO_ENV)."""
    go = os.environ.get(GO_ENV)
    if not go:
        return
    importlib.import_module("skylift.mn.app")  # its imports are most of what a start costs

    log.info("management node on standby until %s exists", go)
    deadline = time.monotonic() + STANDBY_LIMIT
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            log.info("management node never told to serve: leaving")
            raise SystemExit(0)
        time.sleep(0.01)


async def _run(mn: MnState, sock, host: str, port: int) -> None:
    from skylift.mn.app import create_app

    config = uvicorn.Config(create_app(mn), log_level="warning", access_log=False,
                            timeout_graceful_shutdown=GRACE, lifespan="on",
                            **(mn.tls or {}))
    server = MnServer(config, mn)
    watcher = asyncio.create_task(_when_listening(server, mn, sock, host, port))
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
    if not server.started:
        raise SystemExit(1)


async def _when_listening(server, mn: MnState, sock, host: str, port: int) -> None:
    """Once uvicorn listens: steer new connections here, then say we are ready."""
    while not server.started:
        await asyncio.sleep(0.01)
    listen.steer_to_self(sock, listen.listeners_on(host, port) - 1)
    ready = os.environ.get(READY_ENV)
    if ready:
        write_json(ready, {"pid": mn.pid, "instance": mn.heartbeat.uuid if mn.heartbeat else None,
                           "host": host, "port": port, "mode": mn.run.mode,
                           "release": mn.run.release,
                           "scheme": "https" if mn.tls else "http"})
    log.info("management node ready (pid %d)", mn.pid)


class MnServer(uvicorn.Server):
    """uvicorn's server, marking the MN draining at SIGTERM and exiting 0 after the drain."""

    def __init__(self, config: uvicorn.Config, mn: MnState) -> None:
        super().__init__(config)
        self.mn = mn

    def handle_exit(self, sig, frame) -> None:
        self.mn.draining = True
        if self.mn.heartbeat is not None:
            self.mn.heartbeat.state = "draining"  # written by the next beat or at stop
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once it has served, which would kill the process before
        # its cleanup; after a graceful drain the MN exits 0 instead
        if sig in (signal.SIGTERM, signal.SIGINT) and self._captured_signals:
            self._captured_signals.pop()


def resolve_and_serve(db_url: str | None, password_file: Path | None, **kwargs) -> None:
    """Serve against the database named (or the configured one), password from file or env."""
    from skylift.config import load_config
    from skylift.secrets import read_secret

    password = read_secret(file=password_file, env_var=PASSWORD_ENV, prompt=None)
    db = Database.from_string(db_url or load_config().default_db_url(), password)
    serve(db, **kwargs)


def _event_loop_runner():
    """uvloop's runner when installed, else asyncio's (the MN's one loop bounds the reconnect
    storm; the figures are in docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run

