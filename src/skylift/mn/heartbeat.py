"""The management node's heartbeat row in table mn_heartbeat (SQLAlchemy Core only).

The table has the same shape at every revision of the lineage, so an MN in maintenance mode can
write it against a database of any older release. Restores refuse while a row is fresh and
not 'stopped' (skylift.db.backup.running_management_nodes).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid as uuidlib

import sqlalchemy as sa

from skylift.db.conflicts import retry_conflicts

log = logging.getLogger("skylift.mn")

INTERVAL = 5.0
KEEP_STOPPED = dt.timedelta(days=1)
STATES = ("running", "maintenance", "draining", "stopped")

_meta = sa.MetaData()
mn_heartbeat = sa.Table(
    "mn_heartbeat", _meta,
    sa.Column("uuid", sa.String(32), primary_key=True),
    sa.Column("hostname", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("version", sa.String(32)),
    sa.Column("state", sa.String(32)),
    sa.Column("heartbeat_at", sa.DateTime),
)


def utcnow() -> dt.datetime:
    """Now in UTC, as a naive datetime (the column holds UTC without a zone)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Heartbeat:
    """Writes this MN's row now and every INTERVAL seconds from a thread, until stopped."""

    def __init__(self, engine: sa.Engine, *, version: str, state: str,
                 interval: float = INTERVAL, uuid: str | None = None) -> None:
        self.engine = engine
        # the uuid is the MN instance's identity: whoever started the MN may have chosen it
        self.uuid = uuid or uuidlib.uuid4().hex
        self.version = version
        self.state = state
        self.interval = interval
        self._wake = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Insert the row (a failure here fails the start) and beat in the background."""
        def insert() -> None:
            with self.engine.begin() as conn:
                # rows of MNs that stopped long ago would pile up, one per start
                conn.execute(mn_heartbeat.delete().where(
                    mn_heartbeat.c.state == "stopped",
                    mn_heartbeat.c.heartbeat_at < utcnow() - KEEP_STOPPED))
                conn.execute(mn_heartbeat.insert().values(
                    uuid=self.uuid, hostname=socket.gethostname(), pid=os.getpid(),
                    version=self.version, state=self.state, heartbeat_at=utcnow()))

        # MNs starting together on a Galera cluster conflict on these rows (skylift.db.conflicts)
        retry_conflicts(insert)
        self._thread = threading.Thread(target=self._run, name="mn-heartbeat", daemon=True)
        self._thread.start()

    def set_state(self, state: str) -> None:
        """Change the state and write it at once."""
        assert state in STATES, state
        self.state = state
        self.beat()

    def beat(self) -> None:
        """Write the row's state and time now."""
        def update() -> None:
            with self.engine.begin() as conn:
                conn.execute(mn_heartbeat.update().where(mn_heartbeat.c.uuid == self.uuid)
                             .values(state=self.state, heartbeat_at=utcnow()))

        with self._lock:
            retry_conflicts(update)

    def stop(self) -> None:
        """Stop beating and write state 'stopped' (the MN no longer serves)."""
        self._done.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.set_state("stopped")
        except sa.exc.SQLAlchemyError as exc:  # a member out of quorum refuses it: the row
            # ages out instead (three missed beats), as after a crash
            log.warning("heartbeat 'stopped' not written: %s", str(exc).splitlines()[0])

    def _run(self) -> None:
        while not self._done.is_set():
            self._wake.wait(self.interval)
            if self._done.is_set():
                return
            try:
                self.beat()
            except sa.exc.SQLAlchemyError as exc:  # the database may be restarting: beat on
                log.warning("heartbeat not written: %s", str(exc).splitlines()[0])
