"""Moving a database along the lineage: its current revision, and upgrades to a release.

Downgrades are refused before anything changes; the revisions of the chain run one per
transaction (on MariaDB, whose DDL is not transactional, the verified dump taken before an
upgrade is the way back).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError

from skylift.db.engine import Database
from skylift.errors import Refused
from skylift.lineage import NEWEST, RELEASES, Release, release, release_of_revision

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config for our chain, bound to a connection when one is given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@dataclass(frozen=True)
class RevisionInfo:
    """One revision of the chain: id, the release it belongs to, and what it does."""

    revision: str
    release: str
    summary: str


def chain() -> list[RevisionInfo]:
    """Every revision, oldest first, each with the release it belongs to."""
    revs = list(reversed(list(script_directory().walk_revisions())))
    out: list[RevisionInfo] = []
    pending: list = []
    for rev in revs:
        pending.append(rev)
        rel = release_of_revision(rev.revision)
        if rel is not None:
            for item in pending:
                summary = (item.doc or "").strip().splitlines()[0]
                out.append(RevisionInfo(item.revision, rel.version, summary))
            pending = []
    return out


@dataclass
class DatabaseStatus:
    """Where a database stands in the lineage."""

    url: str
    dialect: str
    revision: str | None
    release: str | None  # None: empty database
    complete: bool  # False when stopped between two revisions of one release
    newest: str = NEWEST.version

    def to_dict(self) -> dict:
        return {"url": self.url, "dialect": self.dialect, "revision": self.revision,
                "release": self.release, "complete": self.complete, "newest": self.newest}


def current_revision(db: Database) -> str | None:
    eng = db.engine()
    try:
        with eng.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise db.error("cannot read the database revision", exc) from None
    finally:
        eng.dispose()


def status(db: Database) -> DatabaseStatus:
    """The release and revision of a database (a missing SQLite file is empty, not made)."""
    rev = None if db.missing_file() else current_revision(db)
    if rev is None:
        return DatabaseStatus(db.display(), db.dialect, None, None, True)
    for info in chain():
        if info.revision == rev:
            complete = release_of_revision(rev) is not None
            return DatabaseStatus(db.display(), db.dialect, rev, info.release, complete)
    raise Refused(
        f"the database is at revision {rev}, which this skylift does not know",
        why=f"it was written by a release newer than {NEWEST.version} or by another product",
        next="use the skylift of that release, or restore a dump of a known release",
    )


@dataclass
class MigrationResult:
    """What a migration did (or, with dry_run, would do)."""

    from_release: str | None
    to_release: str
    revisions: list[RevisionInfo] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"from": self.from_release, "to": self.to_release, "dry_run": self.dry_run,
                "seconds": round(self.seconds, 3),
                "revisions": [vars(r) for r in self.revisions]}


def plan(db: Database, to: str) -> tuple[DatabaseStatus, Release, list[RevisionInfo]]:
    """The revisions that would bring the database to release `to`; refuses a downgrade."""
    target = release(to)
    st = status(db)
    revs = chain()
    ids = [r.revision for r in revs]
    start = ids.index(st.revision) + 1 if st.revision else 0
    end = ids.index(target.revision) + 1
    if st.release is not None and start > end:
        raise Refused(
            f"refusing to downgrade the database from {st.release} to {target.version}",
            why="downgrades are not supported: later releases changed schema and data",
            next=f"restore a dump taken before the upgrade, or migrate to {st.release} "
                 "or newer",
        )
    return st, target, revs[start:end]


def migrate(db: Database, to: str = NEWEST.version, *, dry_run: bool = False,
            on_revision=None) -> MigrationResult:
    """Upgrade schema and data to release `to` (the whole chain in one run)."""
    st, target, todo = plan(db, to)
    result = MigrationResult(st.release, target.version, todo, dry_run=dry_run)
    if dry_run or not todo:
        return result
    started = time.perf_counter()
    # one transaction per revision, DDL included (MariaDB commits DDL at once: there a kill
    # inside a revision needs the rollback, which restores the verified dump)
    eng = db.engine(ddl_transactions=True)
    try:
        for info in todo:
            with eng.connect() as conn:
                command.upgrade(alembic_config(conn), info.revision)
                conn.commit()
            if on_revision:
                on_revision(info)
    except SQLAlchemyError as exc:
        raise db.error(f"the migration to {target.version} failed", exc) from None
    finally:
        eng.dispose()
    result.seconds = time.perf_counter() - started
    return result


def releases_between(start: str | None, end: str) -> list[Release]:
    """The releases after `start` up to and including `end`."""
    keys = [r.version for r in RELEASES]
    lo = keys.index(start) + 1 if start else 0
    return list(RELEASES[lo:keys.index(end) + 1])
