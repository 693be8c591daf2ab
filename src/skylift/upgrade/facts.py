"""What the upgrade checks read from a cloud database of any release.

Checks run against the previous release's data, so they never use the newest models: only
SQLAlchemy Core over the tables present at the database's revision (the rule of
oslo.upgradecheck). Every query is small and cached for the duration of one check run.
"""

from __future__ import annotations

from functools import cached_property

import sqlalchemy as sa

from skylift.db.engine import Database
from skylift.db.inventory import resource_counts
from skylift.mn import settings


class CloudFacts:
    """Lazy, cached reads of one cloud database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = self.db.engine()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def rows(self, sql: str, **params) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    @cached_property
    def tables(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())

    @cached_property
    def release(self) -> str | None:
        """The release of the database (None when it holds no cloud yet)."""
        from skylift.db.migrate import status

        return status(self.db).release

    @cached_property
    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return resource_counts(conn)

    def setting(self, category: str, name: str) -> str | None:
        """What the cloud stores for a setting (None when it has none), as the MN reads it."""
        with self.engine.connect() as conn:
            return settings.read(conn, category, name)

    def flag(self, category: str, name: str) -> bool:
        """A boolean setting's meaning, with the MN's default."""
        return settings.flag(category, name, self.setting(category, name))

    def number(self, category: str, name: str) -> float:
        """A numeric setting's meaning, with the MN's default."""
        return settings.number(category, name, self.setting(category, name))

    @cached_property
    def host_os(self) -> dict[str, int]:
        """Host OS release -> number of hosts."""
        return dict(self.rows("SELECT os_release, COUNT(*) FROM hosts GROUP BY os_release"))

    @cached_property
    def cluster_qemu(self) -> dict[tuple[str, str], set[str]]:
        """(cluster uuid, name) -> the QEMU versions its hosts run.

        Keyed by UUID: names need not be unique, and two clusters of one name are two
        clusters.
        """
        out: dict[tuple[str, str], set[str]] = {}
        for uuid, name, qemu in self.rows(
                "SELECT DISTINCT c.uuid, c.name, h.qemu_version FROM hosts h "
                "JOIN clusters c ON c.uuid = h.cluster_uuid"):
            out.setdefault((uuid, name), set()).add(qemu)
        return out

    @cached_property
    def hosts_not_connected(self) -> list[tuple[str, str]]:
        return self.rows("SELECT name, status FROM hosts WHERE status <> 'Connected' "
                         "ORDER BY name")
