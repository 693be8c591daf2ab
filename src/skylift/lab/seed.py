"""Filling an empty database with a sample inventory of any release, in bulk."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from skylift.db.engine import Database
from skylift.db.inventory import resource_counts
from skylift.db.migrate import migrate, status
from skylift.lab.sample import SampleCloud, Shape
from skylift.errors import Refused, UsageError
from skylift.lineage import RELEASES, release

CHUNK = 10_000
KNOWN_OS = ("c72", "c74", "c76")


@dataclass
class SeedResult:
    """What was seeded: release, size, rows per resource kind, and time taken."""

    release: str
    hosts: int
    vms: int
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"release": self.release, "hosts": self.hosts, "vms": self.vms,
                "rows": self.rows, "seconds": round(self.seconds, 3), "counts": self.counts}


def _validate(release_version: str, hosts: int, vms: int, os_release: str) -> None:
    rel = release(release_version)
    if hosts < 1 or vms < 0:
        raise UsageError(f"cannot seed {hosts} hosts and {vms} VMs",
                         why="a cloud needs at least one host and a non-negative VM count",
                         next="pass --hosts 1 or more and --vms 0 or more")
    if os_release not in KNOWN_OS:
        raise UsageError(f"unknown host OS release '{os_release}'",
                         next=f"use one of {', '.join(KNOWN_OS)}")
    first = next(r for r in RELEASES if os_release in r.os_releases)
    if rel.key < first.key:
        raise UsageError(f"release {rel.version} has no {os_release} hosts",
                         why=f"{os_release} arrived in {first.version}",
                         next=f"seed {first.version} or newer, or another --os")


def seed(db: Database, release_version: str, hosts: int, vms: int, *, os_release: str = "c74",
         on_table: Callable[[str, int], None] | None = None) -> SeedResult:
    """Create the schema of release R in an empty database and fill it with a sample cloud."""
    _validate(release_version, hosts, vms, os_release)
    st = status(db)
    eng = db.engine()
    try:
        with eng.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
        if st.revision is not None or tables:
            raise Refused(f"the database {db.display()} is not empty",
                          why=f"it holds {len(tables)} tables"
                              + (f" at release {st.release}" if st.release else ""),
                          next="seed a new, empty database (or drop this one first)")
        started = time.perf_counter()
        migrate(db, "3.2.0")
        cloud = SampleCloud(Shape(hosts, vms, os_release), release(release_version))
        rows = 0
        with eng.begin() as conn:
            for table, table_rows in cloud.tables():
                if table_rows:
                    target = sa.table(table, *[sa.column(c) for c in table_rows[0]])
                    for start in range(0, len(table_rows), CHUNK):
                        conn.execute(target.insert(), table_rows[start:start + CHUNK])
                rows += len(table_rows)
                if on_table:
                    on_table(table, len(table_rows))
        migrate(db, release_version)
        with eng.connect() as conn:
            counts = resource_counts(conn)
    except SQLAlchemyError as exc:
        raise db.error("seeding failed", exc) from None
    finally:
        eng.dispose()
    return SeedResult(release_version, hosts, vms, rows, counts, time.perf_counter() - started)
