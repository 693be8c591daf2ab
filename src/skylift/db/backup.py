"""Backups of the cloud database: dump, verify (by restoring into a scratch database), restore.

A dump is one gzip file in the backup folder, `NAME-HOST-YYYYMMDDTHHMMSSZ.sql.gz` (a SQLite
database file, `.sqlite.gz`, for SQLite), created 0600, with its manifest beside it (see
skylift.db.dump_manifest). `verify` proves a dump restores to the very rows it was taken from;
`restore` puts a dump back in place of the database, after a `pre-restore` dump of what was
there, and refuses while a management node runs against the database.

A run killed midway (kill -9, power loss) leaves scratch files or a scratch database named
after its process; the next dump, verify or restore removes those whose process is gone.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import shutil
import stat
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from skylift.db import dumpers
from skylift.db.content_digest import DIGEST_METHODS, database_digests
from skylift.db.engine import Database, create_database, drop_database
from skylift.db.dump_manifest import (Manifest, TableCheck, compare, manifest_path,
                                    read_manifest, write_manifest)
from skylift.errors import (BackupError, DatabaseInUse, OperationFailed, SkyliftError,
                            UsageError)
from skylift.files import create_private, replace, sha256, sync

# A management node writes its heartbeat every few seconds; older than this, it is gone.
HEARTBEAT_MAX_AGE = dt.timedelta(seconds=30)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_CHUNK = 1 << 20
# verify's scratch: a database skylift_verify_OWNER on the server, and a folder
# skylift-verify-OWNER-RANDOM in the temporary directory (SQLite's scratch file, the load).
VERIFY_DB_PREFIX = "skylift_verify_"
_VERIFY_DIR_PREFIX = "skylift-verify-"
_VERIFY_DB_RE = re.compile(rf"^{VERIFY_DB_PREFIX}{dumpers.OWNER}$")
_VERIFY_DIR_RE = re.compile(rf"^{_VERIFY_DIR_PREFIX}{dumpers.OWNER}-[A-Za-z0-9_]+$")


@dataclass
class DumpResult:
    """A dump written to the backup folder."""

    path: Path
    manifest_path: Path
    manifest: Manifest
    pruned: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "manifest": str(self.manifest_path),
                "release": self.manifest.release, "revision": self.manifest.revision,
                "dialect": self.manifest.dialect, "bytes": self.manifest.dump_bytes,
                "sha256": self.manifest.dump_sha256,
                "tables": {t: d.rows for t, d in self.manifest.tables.items()},
                "pruned": [str(p) for p in self.pruned]}


@dataclass
class VerifyResult:
    """A dump that was restored into a scratch database and found equal, table by table."""

    path: Path
    manifest: Manifest
    checks: list[TableCheck]
    kept: Database | None = None  # the restored copy, when verify was asked to keep it

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "ok": self.ok, "release": self.manifest.release,
                "dialect": self.manifest.dialect,
                "tables": [{"table": c.table, "rows": c.actual_rows, "ok": c.ok}
                           for c in self.checks]}


@dataclass
class RestoreResult:
    """A dump put back in place of the database, and the dump of what was there before."""

    path: Path
    database: str
    pre_restore: DumpResult
    checks: list[TableCheck]

    def to_dict(self) -> dict:
        return {"path": str(self.path), "database": self.database,
                "pre_restore": str(self.pre_restore.path),
                "tables": [{"table": c.table, "rows": c.actual_rows, "ok": c.ok}
                           for c in self.checks]}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _host_tag(db: Database) -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", db.host)


def dump(db: Database, backup_dir: Path, file_name: str, keep: int | None = None) -> DumpResult:
    """Dump db into backup_dir as FILE_NAME-HOST-TIMESTAMP, with its manifest; keep the newest N.

    Both files are created 0600 and appear under their final names only once complete;
    scratch files of an earlier dump or restore into backup_dir that was killed are removed.
    """
    if not _NAME_RE.match(file_name):
        raise UsageError(f"'{file_name}' is not a usable dump name",
                         why="a dump name is made of letters, digits, '.', '_' and '-'",
                         next="use e.g. --file-name before-upgrade")
    if keep is not None and keep < 1:
        raise UsageError("--keep must be 1 or more", why="the new dump itself counts as one")
    backup_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    dumpers.sweep(backup_dir)
    now = _utcnow()
    stem = f"{file_name}-{_host_tag(db)}-{now:%Y%m%dT%H%M%SZ}"
    ext = dumpers.EXTENSIONS[db.dialect]
    final = backup_dir / f"{stem}{ext}"
    n = 1
    while final.exists() or manifest_path(final).exists():  # two dumps in one second
        n += 1
        final = backup_dir / f"{stem}-{n}{ext}"
    tmp = backup_dir / f".{final.name}.{dumpers.owner_token()}.partial"
    try:
        with create_private(tmp) as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
                snap = dumpers.DUMPERS[db.dialect](db, out, backup_dir)
            sync(raw)
        manifest = Manifest(
            name=file_name, host=db.host, database=db.name, dialect=db.dialect,
            created_at=now.isoformat(), revision=snap.revision, release=snap.release,
            tables=snap.tables, digest=snap.method, dump_file=final.name,
            dump_sha256=sha256(tmp),
            dump_bytes=tmp.stat().st_size)
        replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    mpath = write_manifest(manifest, final)
    pruned = prune(backup_dir, file_name, db.host, keep) if keep else []
    return DumpResult(final, mpath, manifest, pruned)


def prune(backup_dir: Path, file_name: str, host: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` dumps of this name and host; return what went."""
    found = []
    for mpath in backup_dir.glob("*.manifest.json"):
        dump_file = backup_dir / mpath.name[: -len(".manifest.json")]
        try:
            m = read_manifest(dump_file)
        except BackupError:
            continue  # not ours to judge: never delete what we cannot read
        if m.name == file_name and m.host == host:
            found.append((m.created_at, dump_file.name, dump_file))
    found.sort(reverse=True)
    gone = []
    for _, _, dump_file in found[keep:]:
        dump_file.unlink(missing_ok=True)
        manifest_path(dump_file).unlink(missing_ok=True)
        gone.append(dump_file)
    return gone


def _chunks(dump_file: Path) -> Iterator[bytes]:
    """The decompressed content; a truncated or corrupted gzip becomes a BackupError."""
    try:
        with gzip.open(dump_file, "rb") as src:
            for block in iter(lambda: src.read(_CHUNK), b""):
                yield block
    except EOFError:
        raise _damaged(dump_file, "it is truncated: the gzip stream ends early") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise _damaged(dump_file, f"it is corrupted: {exc}") from None


def _damaged(dump_file: Path, why: str) -> BackupError:
    return BackupError(f"the dump {dump_file} is damaged", why=why,
                       next="do not use it; take a new dump")


def check_file(dump_file: Path) -> Manifest:
    """Check a dump against its manifest (sha256) and decompress it fully; return the manifest."""
    manifest = read_manifest(dump_file)
    for _ in _chunks(dump_file):
        pass
    actual = sha256(dump_file)
    if actual != manifest.dump_sha256:
        raise _damaged(dump_file, f"its sha256 is {actual[:12]}…, the manifest says "
                                  f"{manifest.dump_sha256[:12]}…")
    return manifest


def _same_dialect(dump_file: Path, manifest: Manifest, db: Database) -> None:
    if manifest.dialect != db.dialect:
        raise UsageError(f"the dump {dump_file.name} is of a {manifest.dialect} database",
                         why=f"it cannot be loaded into {db.dialect} ({db.display()})",
                         next=f"give a {manifest.dialect} database with --db")


def _differences(checks: list[TableCheck]) -> str:
    bad = [c for c in checks if not c.ok]
    text = ", ".join(f"{c.table} (rows {c.expected_rows} -> {c.actual_rows}"
                     f"{'' if c.expected_rows != c.actual_rows else ', content differs'})"
                     for c in bad[:5])
    return text + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")


def verify(dump_file: Path, scratch_server: Database, *,
           keep_as: str | None = None) -> VerifyResult:
    """Restore a dump into a scratch database on scratch_server and compare every table.

    The scratch database (a temporary file for SQLite) is dropped afterwards. A damaged dump,
    or one that does not restore to the rows of its manifest, raises BackupError.

    keep_as: restore into the database of that name on scratch_server instead (for SQLite a
    file of that name beside it), replacing whatever a killed run left there, and keep it once
    it is proven equal to the dump, so that the same restore serves a second use (the
    migration rehearsal, skylift.db.rehearsal); `kept` names it and the caller drops it. A
    failed verification drops it too.
    """
    dump_file = Path(dump_file)
    manifest = check_file(dump_file)
    _same_dialect(dump_file, manifest, scratch_server)
    _sweep_verify_leftovers(scratch_server)
    work = Path(tempfile.mkdtemp(prefix=f"{_VERIFY_DIR_PREFIX}{dumpers.owner_token()}-"))
    try:
        scratch = _new_scratch(scratch_server, keep_as, work)
        keep = False
        try:
            dumpers.load(scratch, _chunks(dump_file), work, replace=False)
            checks = compare(manifest.tables, _digests(scratch, manifest.digest))
            keep = keep_as is not None and all(c.ok for c in checks)
        finally:
            if not keep:
                drop_database(scratch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = VerifyResult(dump_file, manifest, checks, kept=scratch if keep else None)
    if not result.ok:
        raise BackupError(f"the dump {dump_file} does not restore to the data it was taken from",
                          why=_differences(checks), next="do not use it; take a new dump")
    return result


def _new_scratch(server: Database, keep_as: str | None, work: Path) -> Database:
    """An empty scratch database for verify (a file path for SQLite, created by the load)."""
    if keep_as is None and server.dialect == "sqlite":
        return Database.from_string(f"sqlite:///{work / 'scratch.db'}")
    name = keep_as or f"{VERIFY_DB_PREFIX}{dumpers.owner_token()}"
    try:
        if keep_as is not None:
            drop_database(server.with_name(keep_as))  # never reuse what a killed run left
        return create_database(server, name)
    except sa.exc.SQLAlchemyError as exc:
        raise server.error("cannot create a scratch database", exc) from None


def _sweep_verify_leftovers(server: Database) -> None:
    """Remove the scratch folders (temporary directory) and scratch databases (this server)
    of verifications whose process died midway. Best effort: a leftover that cannot be
    removed now is tried again by the next verify."""
    now = time.time()
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        entries = []
    for entry in entries:
        owner = dumpers.scratch_owner(entry.name, [_VERIFY_DIR_RE])
        if owner is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        # The temporary directory is shared: only our own real folders, never a symlink.
        if (stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()
                and dumpers.owner_gone(owner, now - st.st_mtime)):
            shutil.rmtree(entry.path, ignore_errors=True)
    if server.dialect == "sqlite":
        return
    for name in _database_names(server):
        owner = dumpers.scratch_owner(name, [_VERIFY_DB_RE])
        if owner is not None and dumpers.owner_gone(owner, None):
            try:
                drop_database(server.with_name(name))
            except sa.exc.SQLAlchemyError:
                pass


def _database_names(server: Database) -> list[str]:
    sql = ("SELECT datname FROM pg_database" if server.dialect == "postgresql"
           else "SHOW DATABASES")
    eng = server.engine()
    try:
        with eng.connect() as conn:
            return [name for (name,) in conn.exec_driver_sql(sql)]
    except sa.exc.SQLAlchemyError:
        return []  # creating the scratch database will say what is wrong
    finally:
        eng.dispose()


def _digests(db: Database, method: str):
    if method not in DIGEST_METHODS:
        raise BackupError(f"the dump's manifest names a digest method this skylift does not know "
                          f"({method!r})", why="it was written by a newer skylift",
                          next="verify or restore it with the skylift release that made it")
    eng = db.engine()
    try:
        with eng.connect() as conn:
            return database_digests(conn, method)
    except sa.exc.SQLAlchemyError as exc:
        raise db.error("cannot read the database", exc) from None
    finally:
        eng.dispose()


def running_management_nodes(db: Database, now: dt.datetime | None = None) -> list[str]:
    """Management nodes whose heartbeat in table mn_heartbeat says they run (newer than 30 s).

    A missing table means no management node ever ran against the database.
    """
    now = now or _utcnow()
    eng = db.engine()
    try:
        with eng.connect() as conn:
            if not sa.inspect(conn).has_table("mn_heartbeat"):
                return []
            rows = conn.exec_driver_sql(
                "SELECT hostname, pid, state, heartbeat_at FROM mn_heartbeat").all()
    except sa.exc.SQLAlchemyError as exc:
        raise db.error("cannot read the management node heartbeats", exc) from None
    finally:
        eng.dispose()
    running = []
    for hostname, pid, state, beat in rows:
        if (state or "").lower() == "stopped":
            continue
        when = _as_utc(beat)
        # An unreadable time counts as fresh: refusing is safe, restoring under an MN is not.
        if when is None or now - when < HEARTBEAT_MAX_AGE:
            running.append(f"{hostname} (pid {pid}, {state}, heartbeat {beat})")
    return running


def _as_utc(value) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    # Heartbeats are written in UTC; a naive value is UTC.
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def restore(dump_file: Path, db: Database, backup_dir: Path) -> RestoreResult:
    """Replace db's content with a dump, after dumping what is there as `pre-restore`.

    Refused (DatabaseInUse) while a management node runs against db; refused (BackupError)
    if the dump is damaged. Both checks come before anything changes.
    """
    dump_file = Path(dump_file)
    manifest = check_file(dump_file)
    _same_dialect(dump_file, manifest, db)
    running = running_management_nodes(db)
    if running:
        raise DatabaseInUse(
            f"a management node is running against {db.display()}",
            why="running: " + "; ".join(running[:3]),
            next="stop every management node (its heartbeat must say stopped or be older "
                 "than 30 s), then restore again")
    pre = dump(db, backup_dir, "pre-restore", keep=None)
    try:
        dumpers.load(db, _chunks(dump_file), backup_dir, replace=True)
    except SkyliftError as exc:
        state = ("it is unchanged (the load runs in one transaction)"
                 if db.dialect == "postgresql" else "it may be partly restored")
        raise OperationFailed(f"restoring {dump_file.name} into {db.display()} failed: {exc.what}",
                              why=f"{exc.why}; {state}",
                              next=f"fix the cause and restore again; what the database held "
                                   f"before is in {pre.path}") from None
    checks = compare(manifest.tables, _digests(db, manifest.digest))
    if not all(c.ok for c in checks):
        raise OperationFailed(f"{db.display()} does not hold the dump's data after the restore",
                              why=_differences(checks),
                              next=f"restore again; what the database held before is in "
                                   f"{pre.path}")
    return RestoreResult(dump_file, db.display(), pre, checks)
