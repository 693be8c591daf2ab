"""Dumping a database into a stream and loading one back, per dialect.

- MariaDB: `mariadb-dump --single-transaction` out, the `mariadb` client in.
- PostgreSQL: `pg_dump` (plain SQL, on the snapshot the digests are read from) out, `psql` in
  (one transaction, so a failed load leaves the database as it was).
- SQLite: the online backup API into a private temporary file; the file itself is the dump.

Passwords reach the child processes only through their environment (MYSQL_PWD, PGPASSWORD),
never their argument list, and every message built from a tool's output is redacted.

Scratch files (and scratch databases) are named after the process that makes them (see
owner_token), so that a later run can remove what a killed one left (sweep) without ever
touching a file that a running dump is still writing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import URL

from skylift.db.content_digest import (VOLATILE_TABLES, TableDigest, database_digests,
                                      digest_method, read_revision, server_checksums)
from skylift.db.engine import Database
from skylift.files import create_private
from skylift.errors import BackupError, DatabaseError, OperationFailed
from skylift.processes import ProcessId, pid_alive
from skylift.secrets import redact

_CHUNK = 1 << 20

# The owner part of a scratch name: pid, start time (no later process with that pid shares
# it) and a short digest of the host name (a backup folder may be shared between machines).
OWNER = r"(?P<pid>\d+)_(?P<start>\d+)_(?P<host>[0-9a-f]{8})"
# Older skylift versions, and the manifest's temporary file, name by pid alone.
_PID_ONLY = r"(?P<pid>\d+)"
_SCRATCH_NAMES = (r"^\.sqlite-(?:copy|load)-OWNER\.db(?:-journal|-wal|-shm)?$",
                  r"^\..+\.(?:sql|sqlite)\.gz\.OWNER\.partial$",
                  r"^\..+\.(?:sql|sqlite)\.gz\.manifest\.json\.OWNER\.tmp$")
_SCRATCH_PATTERNS = [re.compile(name.replace("OWNER", owner))
                     for owner in (OWNER, _PID_ONLY) for name in _SCRATCH_NAMES]
# A file whose owner cannot be asked (another machine's, or named by pid alone) counts as
# left behind only once nobody has written it for this long: a running dump writes its
# files continuously, and a pid alone may be another machine's live process.
FOREIGN_QUIET_SECONDS = 24 * 3600
PID_ONLY_QUIET_SECONDS = 3600


def _host_id() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def owner_token() -> str:
    """This process as a part of a scratch name: `PID_STARTTIME_HOSTDIGEST`."""
    me = ProcessId.of(os.getpid())
    if me is None:  # no /proc: a pid alone, which sweep treats with care
        return str(os.getpid())
    return f"{me.pid}_{me.start}_{_host_id()}"


def scratch_owner(name: str, patterns=None) -> dict | None:
    """The owner parts of a scratch name of skylift's (pid, and start and host if known), or
    None for any other name."""
    for pattern in patterns or _SCRATCH_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.groupdict()
    return None


def owner_gone(groups: dict, quiet_seconds: float | None) -> bool:
    """Whether the process named in a scratch name (the groups of a match) is gone for sure.

    quiet_seconds: how long the thing has not been written (None: unknown, e.g. a database).
    """
    pid = int(groups["pid"])
    if groups.get("start") is not None:
        if groups["host"] == _host_id():
            return not ProcessId(pid, int(groups["start"])).alive()
        return quiet_seconds is not None and quiet_seconds > FOREIGN_QUIET_SECONDS
    return (quiet_seconds is not None and quiet_seconds > PID_ONLY_QUIET_SECONDS
            and not pid_alive(pid))


def sweep(folder: Path) -> list[Path]:
    """Remove from folder the scratch files of dumps and restores whose process died.

    Only skylift's own scratch names are considered (`.sqlite-copy-*.db`, `.sqlite-load-*.db`
    and their journals, `.<dump>.*.partial`, `.<dump>.manifest.json.*.tmp`), and only those
    whose owner is gone; returns what was removed.
    """
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    now, gone = time.time(), []
    for entry in entries:
        groups = scratch_owner(entry.name)
        if groups is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            quiet = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue  # its owner finished meanwhile
        if owner_gone(groups, quiet):
            Path(entry.path).unlink(missing_ok=True)
            gone.append(Path(entry.path))
    return gone


class Snapshot:
    """What a dump saw: the digests of every table (and their method) and the Alembic revision."""

    def __init__(self, tables: dict[str, TableDigest], revision: str | None,
                 release: str | None, method: str) -> None:
        self.tables, self.revision, self.release = tables, revision, release
        self.method = method


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise OperationFailed(f"{names[0]} is not installed",
                          why="skylift dumps and restores this database kind with it",
                          next="install the database client tools (mariadb-client or "
                               "postgresql-client) on this machine")


def _child_env(db: Database) -> dict[str, str]:
    env = dict(os.environ)
    password = db.url.password
    if db.dialect == "mysql":
        env.pop("MYSQL_PWD", None)  # like the Python driver: no password unless one was given
        if password:
            env["MYSQL_PWD"] = password
    else:
        env.setdefault("PGCONNECT_TIMEOUT", "15")
        if password:
            env["PGPASSWORD"] = password
    return env


def _conn_args(db: Database) -> list[str]:
    url = db.url
    if db.dialect == "mysql":
        args = []
        if url.query.get("unix_socket"):
            args.append(f"--socket={url.query['unix_socket']}")
        elif url.host:
            args += ["--protocol=TCP", "-h", url.host, "-P", str(url.port or 3306)]
        if url.username:
            args += ["-u", url.username]
        return args + ["--default-character-set=utf8mb4"]
    args = []
    if url.host:
        args += ["-h", url.host, "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    return args


def _run(db: Database, argv: list[str], *, what: str, sink: BinaryIO | None = None,
         source: Iterable[bytes] | None = None) -> None:
    """Run a client tool, streaming its stdout to sink or the chunks of source to its stdin."""
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                argv, env=_child_env(db), stderr=errors,
                stdout=subprocess.PIPE if sink is not None else subprocess.DEVNULL,
                stdin=subprocess.PIPE if source is not None else subprocess.DEVNULL)
        except OSError as exc:
            raise OperationFailed(f"cannot run {argv[0]}", why=exc.strerror or str(exc)) from None
        try:
            if sink is not None:
                for block in iter(lambda: proc.stdout.read(_CHUNK), b""):
                    sink.write(block)
            if source is not None:
                try:
                    for block in source:
                        proc.stdin.write(block)
                except BrokenPipeError:
                    pass  # the tool stopped reading; its exit status and stderr say why
                finally:
                    try:
                        proc.stdin.close()
                    except BrokenPipeError:
                        pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        rc = proc.wait()
        if rc != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace").strip()
            # A tool's message may quote its input; keep it short and never show the password.
            reason = redact(" / ".join(text.splitlines()[-3:]) or f"exit status {rc}",
                            db.url.password)
            raise DatabaseError(f"{what} failed for {db.display()}", why=reason,
                                next="check the server, the user's rights and the password")


def _sqlite_engine(path: Path) -> sa.Engine:
    # A plain engine: the skylift one would switch the copy to WAL mode.
    return sa.create_engine(URL.create("sqlite", database=str(path)))


def _snapshot_of(conn) -> Snapshot:
    revision, release = read_revision(conn)
    method = digest_method(conn)
    return Snapshot(database_digests(conn, method), revision, release, method)


def dump_sqlite(db: Database, sink: BinaryIO, work_dir: Path) -> Snapshot:
    """Copy a SQLite database with the online backup API; digests come from the copy itself."""
    src_path = db.sqlite_path
    if src_path is None or not src_path.exists():
        raise DatabaseError(f"no SQLite database at {db.display()}", why="the file does not exist",
                            next="check the --db URL")
    copy = work_dir / f".sqlite-copy-{owner_token()}.db"
    create_private(copy).close()
    try:
        src, dst = sqlite3.connect(src_path), sqlite3.connect(copy)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            raise db.error("cannot copy the SQLite database", exc) from None
        finally:
            src.close()
            dst.close()
        eng = _sqlite_engine(copy)
        try:
            with eng.connect() as conn:
                snap = _snapshot_of(conn)
        finally:
            eng.dispose()
        with open(copy, "rb") as data:
            shutil.copyfileobj(data, sink, _CHUNK)
        return snap
    finally:
        copy.unlink(missing_ok=True)


def dump_postgresql(db: Database, sink: BinaryIO, work_dir: Path) -> Snapshot:
    """pg_dump on a snapshot exported from the transaction that reads the digests: one view."""
    eng = db.engine()
    try:
        with eng.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            snap_id = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            argv = [_tool("pg_dump"), "--format=plain", "--no-owner", "--no-privileges",
                    f"--snapshot={snap_id}", *_conn_args(db), "-d", db.name]
            _run(db, argv, what="pg_dump", sink=sink)
            snap = _snapshot_of(conn)
            conn.rollback()
            return snap
    except sa.exc.SQLAlchemyError as exc:
        raise db.error("cannot read the database", exc) from None
    finally:
        eng.dispose()


def dump_mysql(db: Database, sink: BinaryIO, work_dir: Path) -> Snapshot:
    """mariadb-dump in one transaction; the server's table checksums read before the dump
    and after the digests must agree.

    MariaDB cannot share a snapshot with another session, so a database that changed while
    it was dumped is caught by comparing the two readings rather than trusted. The readings
    are CHECKSUM TABLE (the server's, cheap); the digests of the dump's content are read
    once, after it (reading them twice was a third of the step, docs/benchmarks.md).
    """
    eng = db.engine()
    try:
        with eng.connect() as conn:
            before = server_checksums(conn)
            conn.rollback()
            argv = [_tool("mariadb-dump", "mysqldump"), *_conn_args(db), "--single-transaction",
                    "--quick", "--routines", "--triggers", "--hex-blob", "--no-tablespaces",
                    "--skip-dump-date", db.name]
            _run(db, argv, what="mariadb-dump", sink=sink)
            snap = _snapshot_of(conn)
            conn.rollback()
            after = server_checksums(conn)
            conn.rollback()
    except sa.exc.SQLAlchemyError as exc:
        raise db.error("cannot read the database", exc) from None
    finally:
        eng.dispose()
    changed = sorted(t for t in set(before) | set(after)
                     if before.get(t) != after.get(t)
                     and not (t in VOLATILE_TABLES and t in before and t in after))
    if changed:
        raise BackupError(f"the database {db.display()} changed while it was dumped",
                          why=f"tables changed: {', '.join(changed[:5])}",
                          next="stop the management node (or other writers) and take a new dump")
    return snap


DUMPERS = {"sqlite": dump_sqlite, "postgresql": dump_postgresql, "mysql": dump_mysql}
EXTENSIONS = {"sqlite": ".sqlite.gz", "postgresql": ".sql.gz", "mysql": ".sql.gz"}


def clear_sql(db: Database) -> bytes:
    """SQL that empties a MariaDB or PostgreSQL database before a dump is loaded into it.

    PostgreSQL: every user schema goes (the dump recreates them, except `public`, which it
    expects to exist). MariaDB: every view and table, with foreign key checks off.
    """
    eng = db.engine()
    try:
        with eng.connect() as conn:
            insp = sa.inspect(conn)
            quote = conn.dialect.identifier_preparer.quote
            if db.dialect == "postgresql":
                schemas = [s for s in insp.get_schema_names()
                           if s != "information_schema" and not s.startswith("pg_")]
                lines = [f"DROP SCHEMA IF EXISTS {quote(s)} CASCADE;" for s in schemas]
                # Recreate `public` as a new database has it (owner role since PostgreSQL 14).
                lines.append("CREATE SCHEMA public;")
                if (conn.dialect.server_version_info or (0,)) >= (14,):
                    lines.append("ALTER SCHEMA public OWNER TO pg_database_owner;")
                lines.append("GRANT USAGE ON SCHEMA public TO PUBLIC;")
            else:
                lines = ["SET FOREIGN_KEY_CHECKS=0;"]
                lines += [f"DROP VIEW IF EXISTS {quote(v)};" for v in insp.get_view_names()]
                lines += [f"DROP TABLE IF EXISTS {quote(t)};" for t in insp.get_table_names()]
                lines.append("SET FOREIGN_KEY_CHECKS=1;")
    except sa.exc.SQLAlchemyError as exc:
        raise db.error("cannot read the database", exc) from None
    finally:
        eng.dispose()
    return ("\n".join(lines) + "\n").encode()


def load(db: Database, chunks: Iterable[bytes], work_dir: Path, *, replace: bool) -> None:
    """Load a decompressed dump into db; replace=True empties it first (else it is new)."""
    if db.dialect == "sqlite":
        _load_sqlite(db, chunks, work_dir)
        return

    def with_prelude() -> Iterable[bytes]:
        if replace:
            yield clear_sql(db)
        yield from chunks

    if db.dialect == "postgresql":
        argv = [_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                *_conn_args(db), "-d", db.name, "-f", "-"]
        _run(db, argv, what="psql (loading the dump)", source=with_prelude())
    else:
        argv = [_tool("mariadb", "mysql"), *_conn_args(db), "--batch", db.name]
        _run(db, argv, what="mariadb (loading the dump)", source=with_prelude())


def _load_sqlite(db: Database, chunks: Iterable[bytes], work_dir: Path) -> None:
    # The dump is a database file: write it out privately, then copy it in with the backup API,
    # which replaces the target's whole content under SQLite's own locking.
    target = db.sqlite_path
    if target is None:
        raise DatabaseError("no SQLite file to restore into", next="check the --db URL")
    copy = work_dir / f".sqlite-load-{owner_token()}.db"
    try:
        with create_private(copy) as out:
            for block in chunks:
                out.write(block)
        if not target.exists():
            create_private(target).close()
        src, dst = sqlite3.connect(copy), sqlite3.connect(target)
        try:
            if src.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError("the SQLite dump is not a sound database",
                                  why="PRAGMA integrity_check failed", next="take a new dump")
            src.backup(dst)
        except sqlite3.DatabaseError as exc:
            raise BackupError("the SQLite dump cannot be loaded", why=str(exc),
                              next="take a new dump") from None
        finally:
            src.close()
            dst.close()
    finally:
        copy.unlink(missing_ok=True)
