"""Helpers for the management node tests: seeded databases and MN processes that always stop."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import httpx
import sqlalchemy as sa

from skylift.agent.launch import free_port
from skylift.db.engine import Database
from skylift.lab.seed import seed
from skylift.mn.heartbeat import mn_heartbeat
from skylift.mn.launch import MnHandle, start_mn, stop_mn


def seeded_sqlite(folder: Path, release: str, hosts: int = 3, vms: int = 5) -> Database:
    """A SQLite database holding a sample cloud of a release."""
    folder.mkdir(parents=True, exist_ok=True)
    db = Database.from_string(f"sqlite:///{folder / f'cloud-{release}.db'}")
    seed(db, release, hosts, vms)
    return db


def db_url(db: Database) -> str:
    """The URL to hand to start_mn (start_mn moves any password to the environment)."""
    return db.url.render_as_string(hide_password=False)


@contextlib.contextmanager
def running_mn(db: Database, home: Path, *, port: int | None = None, **kwargs):
    """An MN process on db with its own state folder; stopped (SIGTERM) on exit."""
    port = port or free_port()
    handle = start_mn(db_url(db), port=port, env={"SKYLIFT_HOME": str(home)}, **kwargs)
    try:
        yield handle
    finally:
        stop_mn(handle)


def heartbeats(db: Database) -> list[dict]:
    """The rows of mn_heartbeat."""
    eng = db.engine()
    try:
        with eng.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(mn_heartbeat))]
    finally:
        eng.dispose()


def authed(handle: MnHandle) -> httpx.Client:
    return handle.client()


def hold_call(handle: MnHandle, method: str, path: str, body: bytes) -> socket.socket:
    """Start a call and send only half its body, so it stays in flight until `finish_call`."""
    sock = socket.create_connection((handle.host, handle.port), timeout=10)
    head = (f"{method} {path} HTTP/1.1\r\nHost: {handle.host}\r\n"
            f"Authorization: Bearer {handle.token()}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    sock.sendall(head + body[: len(body) // 2])
    return sock


def finish_call(sock: socket.socket, body: bytes) -> tuple[int, bytes]:
    """Send the rest of a held call's body; its status and response."""
    sock.sendall(body[len(body) // 2:])
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]
