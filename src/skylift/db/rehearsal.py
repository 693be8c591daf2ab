"""Rehearse the migration on a copy of the cloud's database before the cloud is changed.

The verified pre-upgrade dump is restored into a scratch database on the same server (a file
beside the database for SQLite), named `<db>_skylift_rehearsal`, and the real migration chain
(skylift.db.migrate) runs on it to the target release. The scratch is dropped afterwards, and
one a killed run left is replaced, never reused. The measured time is what the real migration
will take, i.e. the API's maintenance window; a failure shows before anything was touched.

One restore serves two uses: `keep_verified_copy` verifies the dump (skylift.db.backup.verify)
and keeps the restored copy, and `rehearse(..., restored=True)` migrates that very copy instead
of restoring the dump a second time.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from skylift.db.backup import verify
from skylift.db.engine import Database, drop_database
from skylift.db.dump_manifest import read_manifest
from skylift.db.migrate import migrate
from skylift.errors import SkyliftError
from skylift.lineage import NEWEST
from skylift.secrets import redact

# Above this many rows a copy costs more time and space than a rehearsal is worth: skipped.
MAX_ROWS = 5_000_000
SCRATCH_SUFFIX = "_skylift_rehearsal"
_IDENT_MAX = 63  # PostgreSQL's limit on a database name (MariaDB's is 64)


@dataclass
class Rehearsal:
    """What a rehearsal found: the migration's time on the copy, or why it failed or was
    skipped."""

    dump: str
    target: str
    rows: int  # rows in the dump (the size of the copy)
    seconds: float | None = None  # the migration's wall time on the copy
    from_release: str | None = None
    skipped: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return {"dump": self.dump, "target": self.target, "from": self.from_release,
                "seconds": None if self.seconds is None else round(self.seconds, 3),
                "rows": self.rows, "skipped": self.skipped, "error": self.error}


def scratch_name(server: Database) -> str:
    """The rehearsal copy's name: `<db>_skylift_rehearsal` (for SQLite, of a file beside it)."""
    base = server.sqlite_path.stem if server.dialect == "sqlite" else server.name
    base = re.sub(r"[^A-Za-z0-9_]", "_", base or "skylift")[: _IDENT_MAX - len(SCRATCH_SUFFIX)]
    return base + SCRATCH_SUFFIX


def scratch_of(server: Database) -> Database:
    """The rehearsal's copy, on the same server as the cloud's database."""
    return server.with_name(scratch_name(server))


def too_large(rows: int, max_rows: int = MAX_ROWS) -> str | None:
    """Why a database of this many rows is not rehearsed, or None."""
    if rows > max_rows:
        return (f"the database has {rows:,} rows, more than {max_rows:,}: too large to copy "
                "for a rehearsal")
    return None


def keep_verified_copy(dump_file: Path, server: Database, *, max_rows: int = MAX_ROWS) -> bool:
    """Verify a dump (raises BackupError like backup.verify) and, unless the database is too
    large to rehearse, keep the restored copy as the rehearsal's scratch; True if kept.

    The caller follows with rehearse(..., restored=True), or drop_scratch."""
    rows = _rows(read_manifest(Path(dump_file)))  # verify reads and checks the whole file
    keep = too_large(rows, max_rows) is None
    verify(dump_file, server, keep_as=scratch_name(server) if keep else None)
    return keep


def rehearse(dump_file: Path, server: Database, to: str = NEWEST.version, *,
             restored: bool = False, max_rows: int = MAX_ROWS) -> Rehearsal:
    """Migrate a copy of the dump to release `to` on server's scratch database and time it.

    restored=True: the scratch already holds the verified dump, untouched since
    (keep_verified_copy); otherwise the dump is verified into it first. A damaged dump or a
    failing migration is reported in `error` (never raised); the scratch is dropped in every
    case.
    """
    dump_file = Path(dump_file)
    result = Rehearsal(str(dump_file), to, rows=0)
    scratch = scratch_of(server)
    try:
        manifest = read_manifest(dump_file)  # the file itself: checked by verify
        result.rows, result.from_release = _rows(manifest), manifest.release
        result.skipped = too_large(result.rows, max_rows)
        if result.skipped:
            return result
        if not restored:
            verify(dump_file, server, keep_as=scratch_name(server))
        started = time.perf_counter()
        migrate(scratch, to)
        result.seconds = time.perf_counter() - started
    except SkyliftError as exc:
        result.error = redact(f"{exc.what}: {exc.why}" if exc.why else exc.what,
                              server.url.password)
    except Exception as exc:  # noqa: BLE001 - a data migration may fail in any way; say how
        result.error = redact(f"{type(exc).__name__}: {exc}", server.url.password)
    finally:
        drop_scratch(server)
    return result


def drop_scratch(server: Database) -> None:
    """Drop the rehearsal's scratch database (or file); missing is fine."""
    scratch = scratch_of(server)
    try:
        drop_database(scratch)
    except sa.exc.SQLAlchemyError as exc:
        raise server.error(f"cannot drop the rehearsal's scratch database {scratch.name}",
                           exc) from None


def _rows(manifest) -> int:
    return sum(t.rows for t in manifest.tables.values())
