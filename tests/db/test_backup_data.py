"""Shared data for the backup tests (no tests here): a realistic database, awkward values."""

from __future__ import annotations

import datetime as dt
import decimal

import sqlalchemy as sa

from skylift.db.engine import Database

META = sa.MetaData()
ZONE = sa.Table(
    "zone", META,
    sa.Column("uuid", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
VM = sa.Table(
    "vm_instance", META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("zone_uuid", sa.String(32), sa.ForeignKey("zone.uuid"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("ha", sa.Boolean),
    sa.Column("cpu_share", sa.Numeric(10, 2)),
    sa.Column("ratio", sa.Float),
    sa.Column("memory", sa.BigInteger),
    sa.Column("created_at", sa.DateTime),
    sa.Column("boot_id", sa.LargeBinary(16)),
)
TAG = sa.Table(  # no primary key on purpose
    "tag", META,
    sa.Column("resource", sa.String(64)),
    sa.Column("tag", sa.String(64)),
)
SETTING = sa.Table(
    "global_setting", META,
    sa.Column("category", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text),
)

BASE = dt.datetime(2025, 3, 30, 1, 59, 58, 123456)
AWKWARD = ["it's", 'say "hi"', "line1\nline2\r\n", "back\\slash", "ünïcødé ✓ 虚拟机", "tab\there",
           "semi; DROP TABLE zone; --", "", "%_wild_%"]


def populate(db: Database, vms: int = 2000) -> None:
    """Create the tables and fill them (a few thousand rows)."""
    eng = db.engine()
    try:
        META.create_all(eng)
        with eng.begin() as conn:
            conn.execute(ZONE.insert(), [
                {"uuid": f"z{i:031d}", "name": AWKWARD[i % len(AWKWARD)] + f" zone {i}",
                 "enabled": i % 2 == 0, "created_at": BASE + dt.timedelta(days=i)}
                for i in range(5)])
            conn.execute(VM.insert(), [
                {"id": i + 1, "zone_uuid": f"z{i % 5:031d}",
                 "name": AWKWARD[i % len(AWKWARD)] + str(i),
                 "description": None if i % 7 == 0 else AWKWARD[(i * 3) % len(AWKWARD)] * 3,
                 "ha": None if i % 11 == 0 else i % 3 == 0,
                 "cpu_share": None if i % 13 == 0 else decimal.Decimal(i) / 4,
                 "ratio": None if i % 17 == 0 else i / 3.0,
                 "memory": (i + 1) * 2**30,
                 "created_at": None if i % 19 == 0 else BASE + dt.timedelta(seconds=i * 3607),
                 "boot_id": None if i % 23 == 0 else bytes((i + k) % 256 for k in range(16))}
                for i in range(vms)])
            conn.execute(TAG.insert(), [{"resource": f"vm-{i % 50}", "tag": AWKWARD[i % 9]}
                                        for i in range(500)])
            conn.execute(SETTING.insert(), [
                {"category": "ha", "name": "enable", "value": "true"},
                {"category": "kvm", "name": "updatePkgWhenConnect", "value": None}])
    finally:
        eng.dispose()


def contents(db: Database) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order, as Python values."""
    eng = db.engine()
    try:
        with eng.connect() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            out = {}
            for name, table in meta.tables.items():
                rows = [tuple(r) for r in conn.execute(sa.select(table))]
                out[name] = sorted(rows, key=repr)
            return out
    finally:
        eng.dispose()


def mutate(db: Database) -> None:
    """Change the database in every way a restore must undo."""
    eng = db.engine()
    try:
        with eng.begin() as conn:
            conn.execute(VM.delete().where(VM.c.id <= 100))
            conn.execute(VM.update().values(name="changed"))
            conn.execute(SETTING.delete())
            conn.execute(sa.text("CREATE TABLE extra_table (id INTEGER PRIMARY KEY)"))
    finally:
        eng.dispose()
