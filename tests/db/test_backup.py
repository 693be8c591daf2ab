"""Dump, verify and restore round trips on real SQLite, MariaDB and PostgreSQL databases."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json
import os
import re
import stat

import pytest

from skylift.db import backup, dumpers
from skylift.db.content_digest import normalise
from skylift.db.engine import Database
from skylift.db.dump_manifest import file_sha256, manifest_path
from skylift.errors import BackupError, UsageError
from test_backup_data import contents, mutate, populate

NAME_RE = re.compile(r"^nightly-(local|127\.0\.0\.1)-\d{8}T\d{6}Z(-\d+)?\.(sql|sqlite)\.gz$")


def scratch_databases(db: Database) -> list[str]:
    if db.dialect == "sqlite":
        return []
    sql = ("SELECT datname FROM pg_database" if db.dialect == "postgresql"
           else "SELECT schema_name FROM information_schema.schemata")
    eng = db.engine()
    try:
        with eng.connect() as conn:
            # this process's only: other test runs may share the server
            return [n for (n,) in conn.exec_driver_sql(sql)
                    if n == f"skylift_verify_{dumpers.owner_token()}"]
    finally:
        eng.dispose()


@pytest.fixture
def populated(fresh_db) -> Database:
    populate(fresh_db)
    return fresh_db


def test_round_trip(populated, tmp_path):
    """dump -> verify -> (change everything) -> restore gives back the very same rows."""
    before = contents(populated)
    backups = tmp_path / "backups"
    result = backup.dump(populated, backups, "nightly", keep=None)
    assert NAME_RE.match(result.path.name), result.path.name
    m = result.manifest
    assert m.dialect == populated.dialect and m.tables["vm_instance"].rows == 2000
    assert m.tables["tag"].rows == 500 and m.release is None
    assert m.dump_sha256 == file_sha256(result.path)

    verified = backup.verify(result.path, populated)
    assert verified.ok and {c.table for c in verified.checks} == set(m.tables)
    assert scratch_databases(populated) == []  # verify dropped its scratch database

    mutate(populated)
    assert contents(populated) != before
    restored = backup.restore(result.path, populated, backups)
    assert contents(populated) == before  # extra_table is gone, changed rows are back
    assert all(c.ok for c in restored.checks)
    # The pre-restore dump holds the mutated state and is itself a sound backup.
    pre = restored.pre_restore
    assert pre.path.name.startswith("pre-restore-") and "extra_table" in pre.manifest.tables
    backup.verify(pre.path, populated)


def test_same_data_same_digests(populated, tmp_path):
    """Two dumps of unchanged data carry the same digests, under distinct names."""
    result = backup.dump(populated, tmp_path, "nightly")
    again = backup.dump(populated, tmp_path, "nightly")
    assert again.manifest.tables == result.manifest.tables
    assert again.path != result.path  # two dumps in one second get distinct names


def test_files_are_private_from_the_start(make_db, tmp_path):
    db = make_db("sqlite")
    populate(db, vms=50)
    old = os.umask(0)  # even with a permissive umask, nothing is ever readable by others
    try:
        result = backup.dump(db, tmp_path / "b", "nightly")
    finally:
        os.umask(old)
    for path in (result.path, result.manifest_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
        [result.path.name, result.manifest_path.name])  # no temporary files left


def test_keep_prunes_only_that_name(make_db, tmp_path):
    db = make_db("sqlite")
    populate(db, vms=10)
    other = backup.dump(db, tmp_path, "weekly")
    made = [backup.dump(db, tmp_path, "nightly", keep=2) for _ in range(4)]
    left = set(tmp_path.glob("nightly-*.gz"))
    assert left == {made[2].path, made[3].path}
    assert all(manifest_path(p).exists() for p in left)
    assert len(list(tmp_path.glob("nightly-*.manifest.json"))) == 2
    assert [len(r.pruned) for r in made] == [0, 0, 1, 1]
    assert other.path.exists() and manifest_path(other.path).exists()


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
@pytest.mark.parametrize("damage", ["flip", "truncate", "flip-with-matching-manifest"])
def test_damaged_dump_rejected(make_db, tmp_path, dialect, damage):
    """A flipped byte or a cut-off file is refused with the file name and what to do."""
    db = make_db(dialect)
    populate(db, vms=300)
    result = backup.dump(db, tmp_path, "nightly")
    data = bytearray(result.path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    else:
        data[len(data) // 2] ^= 0xFF
    result.path.write_bytes(bytes(data))
    if damage == "flip-with-matching-manifest":
        # The gzip check must stand on its own, even with a manifest that agrees with the file.
        mpath = manifest_path(result.path)
        doc = json.loads(mpath.read_text())
        doc["dump_sha256"] = file_sha256(result.path)
        mpath.write_text(json.dumps(doc))
    with pytest.raises(BackupError) as err:
        backup.verify(result.path, db)
    text = err.value.render()
    assert result.path.name in text and "take a new dump" in text
    assert ("truncated" in text) if damage == "truncate" else ("corrupted" in text)
    assert err.value.exit_code == 2


def test_verify_finds_a_table_that_differs(make_db, tmp_path):
    """A dump whose content no longer matches its manifest's digests is refused, by table."""
    db = make_db("mysql")
    populate(db, vms=100)
    result = backup.dump(db, tmp_path, "nightly")
    mpath = manifest_path(result.path)
    doc = json.loads(mpath.read_text())
    doc["tables"]["vm_instance"]["sha256"] = "0" * 64
    mpath.write_text(json.dumps(doc))
    with pytest.raises(BackupError, match="does not restore") as err:
        backup.verify(result.path, db)
    assert "vm_instance" in err.value.why and "zone" not in err.value.why


def test_missing_manifest_and_wrong_dialect(make_db, tmp_path):
    db = make_db("sqlite")
    populate(db, vms=10)
    result = backup.dump(db, tmp_path, "nightly")
    with pytest.raises(UsageError, match="sqlite database"):
        backup.verify(result.path, make_db("postgresql"))
    manifest_path(result.path).unlink()
    with pytest.raises(BackupError, match="no manifest"):
        backup.verify(result.path, db)
    with pytest.raises(BackupError, match="no dump file"):
        backup.verify(tmp_path / "nope.sql.gz", db)


def test_bad_names_refused(make_db, tmp_path):
    db = make_db("sqlite")
    for bad in ["", "../x", "a/b", "-x", "a b"]:
        with pytest.raises(UsageError):
            backup.dump(db, tmp_path, bad)
    with pytest.raises(UsageError):
        backup.dump(db, tmp_path, "ok", keep=0)


def test_dump_is_plain_sql_for_servers(make_db, tmp_path):
    """MariaDB and PostgreSQL dumps are SQL text an operator can read with zcat."""
    for dialect in ("mysql", "postgresql"):
        db = make_db(dialect)
        populate(db, vms=5)
        text = gzip.decompress(backup.dump(db, tmp_path, dialect).path.read_bytes()).decode()
        assert "CREATE TABLE" in text and "vm_instance" in text


def test_normalise():
    """Equal data gives equal values; different kinds of data never collide."""
    utc = dt.timezone.utc
    assert normalise(True) == normalise(1) and normalise(False) == normalise(0)
    assert normalise(decimal.Decimal("1.50")) == normalise(decimal.Decimal("1.5"))
    assert normalise(decimal.Decimal("100")) == normalise(decimal.Decimal("1E+2"))
    aware = dt.datetime(2026, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert normalise(aware) == normalise(dt.datetime(2026, 1, 1, 10)) == normalise(
        dt.datetime(2026, 1, 1, 10, tzinfo=utc))
    assert normalise(None) != normalise("None") and normalise("") != normalise(None)
    assert normalise("1.5") != normalise(decimal.Decimal("1.5")) != normalise(1.5)
    assert normalise(b"\x00\xff") == normalise(memoryview(b"\x00\xff")) == ["x", "00ff"]


@pytest.mark.parametrize("table, refused", [("vm_instance", True), ("mn_heartbeat", False)])
def test_mariadb_writes_during_dump(make_db, tmp_path, monkeypatch, table, refused):
    """Inventory written during a MariaDB dump makes it refused; MN heartbeats do not."""
    db = make_db("mysql")
    populate(db, vms=50)
    eng = db.engine()
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE mn_heartbeat (uuid VARCHAR(32) PRIMARY KEY, "
                             "hostname VARCHAR(64), pid INT, version VARCHAR(16), "
                             "state VARCHAR(16), heartbeat_at DATETIME)")
    real_run = dumpers._run

    def run_then_write(*args, **kwargs):
        real_run(*args, **kwargs)
        with eng.begin() as conn:  # a writer sneaks in while the dump is being taken
            if table == "vm_instance":
                conn.exec_driver_sql("UPDATE vm_instance SET name = 'late' WHERE id = 1")
            else:
                conn.exec_driver_sql("INSERT INTO mn_heartbeat VALUES "
                                     "('mn1', 'mn-1', 1, '4.3.12', 'maintenance', NOW())")

    monkeypatch.setattr(dumpers, "_run", run_then_write)
    try:
        if refused:
            with pytest.raises(BackupError, match="changed while it was dumped") as err:
                backup.dump(db, tmp_path, "nightly")
            assert "vm_instance" in err.value.why and list(tmp_path.iterdir()) == []
        else:
            result = backup.dump(db, tmp_path, "nightly")
            monkeypatch.undo()
            backup.verify(result.path, db)
    finally:
        eng.dispose()
