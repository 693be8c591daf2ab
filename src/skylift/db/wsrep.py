"""A Galera member's replication state, read with SQL: for the MN, which follows its own
member's quorum (skylift.mn.quorum) and reports it (GET /v1/cluster), and for the HA tools
(skylift.ha.galera re-exports all of this beside the members' configuration).

A member cut off from the majority goes non-Primary and refuses every statement (error 1047)
but still answers SHOW: so the state is read on a DB-API connection of its own, without
SQLAlchemy's pool or first-connect queries, with short connect and read timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from skylift.errors import DatabaseError, UsageError

# What MariaDB answers a statement on a member that is not in the Primary component (or not
# yet Synced): ER_UNKNOWN_COM_ERROR, "WSREP has not yet prepared node for application use".
NOT_PRIMARY_ERROR = 1047


@dataclass(frozen=True)
class WsrepStatus:
    """A member's replication state, from `SHOW GLOBAL STATUS LIKE 'wsrep_%'`."""

    local_state_comment: str    # Synced, Donor/Desynced, Joining, Joined, Initialized...
    cluster_size: int           # members in this member's component
    cluster_status: str         # Primary, non-Primary or Disconnected
    ready: bool                 # takes queries (wsrep_ready)
    connected: bool             # in touch with any other member (wsrep_connected)
    local_index: int = -1
    cluster_state_uuid: str = ""
    last_committed: int = -1    # the last writeset applied here (wsrep_last_committed)
    incoming_addresses: str = ""

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, Any]] | dict[str, Any]) -> "WsrepStatus":
        """From (Variable_name, Value) rows, names in any case; a server without wsrep
        (no rows) reads as Disconnected, not ready."""
        values = {str(k).lower(): "" if v is None else str(v)
                  for k, v in (rows.items() if isinstance(rows, dict) else rows)}

        def number(name: str) -> int:
            try:
                found = int(values.get(name, ""))
            except ValueError:
                return -1
            return found if found < 2 ** 63 else -1   # -1 as an unsigned 64-bit number

        return cls(local_state_comment=values.get("wsrep_local_state_comment", ""),
                   cluster_size=max(number("wsrep_cluster_size"), 0),
                   cluster_status=values.get("wsrep_cluster_status", "Disconnected"),
                   ready=values.get("wsrep_ready", "").upper() == "ON",
                   connected=values.get("wsrep_connected", "").upper() == "ON",
                   local_index=number("wsrep_local_index"),
                   cluster_state_uuid=values.get("wsrep_cluster_state_uuid", ""),
                   last_committed=number("wsrep_last_committed"),
                   incoming_addresses=values.get("wsrep_incoming_addresses", ""))

    @property
    def primary(self) -> bool:
        return self.cluster_status == "Primary"

    @property
    def healthy(self) -> bool:
        """In the Primary component, Synced, connected and taking queries."""
        return (self.primary and self.ready and self.connected
                and self.local_state_comment == "Synced")

    def finding(self, expected_size: int | None = None) -> str | None:
        """What is wrong with this member, for a person; None when it is healthy (and, with
        expected_size, sees that many members)."""
        if self.cluster_status == "Disconnected":
            return ("not in a Galera cluster (wsrep Disconnected: no provider loaded, or cut "
                    "off from every member)")
        if not self.primary:
            return (f"not in the Primary component ({self.cluster_status}, "
                    f"{self.cluster_size} member(s) in view): it refuses reads and writes "
                    "until it reaches a majority of the cluster again")
        if not self.connected:
            return "not connected to the cluster"
        if self.local_state_comment != "Synced":
            return (f"in the Primary component but {self.local_state_comment or 'in no state'}"
                    " (catching up or serving a state transfer), not Synced")
        if not self.ready:
            return "Synced but not ready for queries (wsrep_ready OFF)"
        if expected_size is not None and self.cluster_size != expected_size:
            return (f"healthy, but the cluster has {self.cluster_size} member(s) of "
                    f"{expected_size}: the others are down or cut off")
        return None

    def to_dict(self) -> dict:
        return {"local_state_comment": self.local_state_comment,
                "cluster_size": self.cluster_size, "cluster_status": self.cluster_status,
                "ready": self.ready, "connected": self.connected, "healthy": self.healthy,
                "local_index": self.local_index, "last_committed": self.last_committed}


STATUS_SQL = "SHOW GLOBAL STATUS LIKE 'wsrep\\_%'"


def status(source, *, password: str | None = None, timeout: float = 5.0) -> WsrepStatus:
    """A member's WsrepStatus, read with SQL (works on a non-Primary member too).

    source: a database URL (text or skylift.db.engine.Database; the password separately,
    e.g. `mysql://skylift@198.18.95.11/skylift` or
    `mysql://skylift@localhost/skylift?unix_socket=/path/mariadbd.sock`), an SQLAlchemy
    Engine or Connection, or a DB-API connection (PyMySQL). DatabaseError when the member
    cannot be reached."""
    import sqlalchemy as sa

    from skylift.db.engine import Database

    if isinstance(source, sa.Connection):
        return WsrepStatus.from_rows(source.execute(sa.text(STATUS_SQL)).all())
    if hasattr(source, "cursor") and not isinstance(source, sa.Engine):
        return _read(source)
    if isinstance(source, sa.Engine):
        url, dialect = source.url, source.dialect
    else:
        db = source if isinstance(source, Database) else Database.from_string(str(source),
                                                                              password)
        if db.dialect != "mysql":
            raise UsageError(f"{db.display()} is not a MariaDB database",
                             why="Galera members are MariaDB servers",
                             next="give a mysql:// URL of the member")
        url = db.url
        dialect = sa.create_engine(url, poolclass=sa.pool.NullPool).dialect
    conn = _connect(url, dialect, timeout)
    try:
        return _read(conn)
    finally:
        conn.close()


def _connect(url, dialect, timeout: float):
    """A DB-API connection of the URL's driver, without SQLAlchemy's first-connect queries:
    a member outside the Primary component refuses every SELECT (1047) but answers SHOW.
    DatabaseError when the member cannot be reached."""
    cargs, cparams = dialect.create_connect_args(url)
    cparams.update(connect_timeout=max(1, int(timeout)), read_timeout=max(1, int(timeout)))
    try:
        return dialect.loaded_dbapi.connect(*cargs, **cparams)
    except dialect.loaded_dbapi.Error as exc:
        raise DatabaseError(f"cannot read the Galera state of "
                            f"{url.render_as_string(hide_password=True)}",
                            why=str(exc).strip()[:300],
                            next="check that the member runs and listens there "
                                 "(its mariadbd.err)") from None


VARIABLES_SQL = ("SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                 "('wsrep_on', 'wsrep_provider')")


def galera_on(engine, timeout: float = 5.0) -> bool:
    """Whether the engine's database is a Galera member: MariaDB with wsrep_on ON and a
    provider loaded (a server built with wsrep but running without it says OFF or provider
    none). False for any other dialect, without a question asked. DatabaseError when the
    server cannot be reached; the driver's error when it fails to answer."""
    if engine.dialect.name not in ("mysql", "mariadb"):
        return False
    conn = _connect(engine.url, engine.dialect, timeout)
    try:
        cur = conn.cursor()
        try:
            cur.execute(VARIABLES_SQL)
            values = {str(k).lower(): "" if v is None else str(v) for k, v in cur.fetchall()}
        finally:
            cur.close()
    finally:
        conn.close()
    return (values.get("wsrep_on", "").upper() == "ON"
            and values.get("wsrep_provider", "none").lower() not in ("", "none"))


def _read(conn) -> WsrepStatus:
    cur = conn.cursor()
    try:
        cur.execute(STATUS_SQL)
        return WsrepStatus.from_rows(cur.fetchall())
    finally:
        cur.close()


def refused_as_not_primary(exc: BaseException) -> bool:
    """Whether a database error is a member refusing a statement because it is not in the
    Primary component (or not Synced yet): retry on another member."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    return bool(args) and args[0] == NOT_PRIMARY_ERROR
