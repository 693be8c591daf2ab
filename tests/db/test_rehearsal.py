"""The migration rehearsed on a copy of the verified dump, on SQLite, MariaDB and PostgreSQL.

A rehearsal times the real migration chain on a scratch copy, reports a damaged dump or a
failing migration as its error, and never leaves its scratch behind (nor reuses one a killed
run left). Verify and rehearsal share one restore. The upgrade step records the result in
the run's state, and the measured time becomes the estimate of the migration.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from skylift.db import backup, dumpers, rehearsal
from skylift.db.engine import Database, create_database
from skylift.db.migrate import status
from skylift.errors import Refused
from skylift.lab.seed import seed
from skylift.lineage import NEWEST, release
from skylift.upgrade import estimates
from skylift.upgrade.steps.management_node import MigrateDatabase
from skylift.upgrade.facts import CloudFacts
from skylift.upgrade.run_state import RunState
from skylift.upgrade.steps.protect import BackupDatabase, RehearseMigration

DIALECTS = ["sqlite", "mysql", "postgresql"]
OLD = "3.7.1"


def scratch_left(db: Database) -> list[str]:
    """The rehearsal's (and this process's verify's) scratch databases or files that exist now.

    (Other test runs may share the servers: their scratch databases are not ours to judge.)
    """
    if db.dialect == "sqlite":
        path = rehearsal.scratch_of(db).sqlite_path
        return [str(p) for p in path.parent.glob(path.name + "*")]
    ours = {rehearsal.scratch_name(db), backup.VERIFY_DB_PREFIX + dumpers.owner_token()}
    return [n for n in backup._database_names(db) if n in ours]


def cloud(make_db, dialect: str, version: str = OLD) -> Database:
    db = make_db(dialect)
    seed(db, version, hosts=4, vms=20)
    return db


def test_scratch_is_named_after_the_database_on_the_same_server(tmp_path):
    sqlite = Database.from_string(f"sqlite:///{tmp_path / 'zstack.db'}")
    assert rehearsal.scratch_of(sqlite).sqlite_path == tmp_path / "zstack_skylift_rehearsal.db"
    maria = Database.from_string("mysql://root@127.0.0.1/zstack")
    assert rehearsal.scratch_of(maria).name == "zstack_skylift_rehearsal"
    long = Database.from_string(f"postgresql://postgres@127.0.0.1/{'x' * 63}")
    assert len(rehearsal.scratch_name(long)) == 63


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_rehearsal_times_the_migration_on_a_copy_and_drops_it(make_db, tmp_path, dialect):
    db = cloud(make_db, dialect)
    dump = backup.dump(db, tmp_path, "pre-upgrade")

    result = rehearsal.rehearse(dump.path, db, NEWEST.version)

    assert result.ok, result.error
    assert result.seconds > 0 and result.skipped is None
    assert result.rows == sum(t.rows for t in dump.manifest.tables.values()) > 0
    assert (result.from_release, result.target) == (OLD, NEWEST.version)
    assert scratch_left(db) == []
    assert status(db).release == OLD  # the cloud's own database is untouched


@pytest.mark.parametrize("dialect", DIALECTS)
def test_verify_and_rehearsal_share_one_restore(make_db, tmp_path, dialect, monkeypatch):
    db = cloud(make_db, dialect)
    dump = backup.dump(db, tmp_path, "pre-upgrade")
    loads = []
    real_load = dumpers.load
    monkeypatch.setattr(dumpers, "load", lambda *a, **k: (loads.append(a[0]),
                                                          real_load(*a, **k))[1])

    assert rehearsal.keep_verified_copy(dump.path, db) is True
    assert status(rehearsal.scratch_of(db)).release == OLD  # the verified copy, kept
    result = rehearsal.rehearse(dump.path, db, NEWEST.version, restored=True)

    assert result.ok and result.seconds > 0, result.error
    assert len(loads) == 1
    assert scratch_left(db) == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_damaged_dump_gives_the_error_and_leaves_no_scratch(make_db, tmp_path, dialect):
    db = cloud(make_db, dialect)
    dump = backup.dump(db, tmp_path, "pre-upgrade")
    data = dump.path.read_bytes()
    dump.path.write_bytes(data[: len(data) // 2])

    result = rehearsal.rehearse(dump.path, db, NEWEST.version)

    assert not result.ok and "damaged" in result.error and "truncated" in result.error
    assert result.seconds is None
    assert scratch_left(db) == []


def _stray_table(db: Database) -> None:
    """A table of a later release that is already there: the 4.0.0 migration cannot create it."""
    eng = db.engine()
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE em_ldap_bindings (id INTEGER PRIMARY KEY)"))
    eng.dispose()


@pytest.mark.parametrize("restored", [False, True])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_failing_migration_gives_its_error_and_leaves_no_scratch(make_db, tmp_path, dialect,
                                                                    restored):
    db = cloud(make_db, dialect, "3.9.0")
    _stray_table(db)
    dump = backup.dump(db, tmp_path, "pre-upgrade")
    if restored:
        assert rehearsal.keep_verified_copy(dump.path, db)

    result = rehearsal.rehearse(dump.path, db, NEWEST.version, restored=restored)

    assert not result.ok and "em_ldap_bindings" in result.error, result.error
    assert f"the migration to {NEWEST.version} failed" in result.error
    assert result.seconds is None and result.rows > 0
    assert scratch_left(db) == []
    assert status(db).release == "3.9.0"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_copy_a_killed_run_left_is_replaced_not_reused(make_db, tmp_path, dialect):
    db = cloud(make_db, dialect)
    dump = backup.dump(db, tmp_path, "pre-upgrade")
    # what a rehearsal killed mid-migration leaves: a copy migrated half way, plus junk
    left = rehearsal.scratch_of(db)
    if dialect != "sqlite":
        create_database(db, left.name)
    eng = left.engine()
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE half_migrated (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("CREATE TABLE hosts (id INTEGER PRIMARY KEY)"))
    eng.dispose()

    assert rehearsal.keep_verified_copy(dump.path, db)  # the copy equals the dump again
    result = rehearsal.rehearse(dump.path, db, NEWEST.version, restored=True)
    assert result.ok, result.error

    if dialect != "sqlite":
        create_database(db, left.name)
    eng = left.engine()
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE half_migrated (id INTEGER PRIMARY KEY)"))
    eng.dispose()
    result = rehearsal.rehearse(dump.path, db, NEWEST.version)
    assert result.ok, result.error
    assert scratch_left(db) == []


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_cloud_too_large_to_copy_is_skipped_with_the_reason(make_db, tmp_path, dialect):
    db = cloud(make_db, dialect)
    dump = backup.dump(db, tmp_path, "pre-upgrade")

    assert rehearsal.keep_verified_copy(dump.path, db, max_rows=10) is False
    result = rehearsal.rehearse(dump.path, db, NEWEST.version, max_rows=10)

    assert result.ok and result.seconds is None
    assert "too large to copy" in result.skipped and f"{result.rows:,} rows" in result.skipped
    assert scratch_left(db) == []


# --- the upgrade step ---


def _run(db: Database, tmp_path: Path) -> SimpleNamespace:
    """What the protect steps use of an upgrade run."""
    ctx = SimpleNamespace(db=db, target=release(NEWEST.version), facts=CloudFacts(db))
    return SimpleNamespace(ctx=ctx, state=RunState(tmp_path / "run"),
                           backup_dir=tmp_path / "backups")


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
def test_the_step_records_the_rehearsal_and_its_time_becomes_the_estimate(make_db, tmp_path,
                                                                         dialect):
    db = cloud(make_db, dialect)
    run = _run(db, tmp_path)
    rule = estimates.seconds(MigrateDatabase(), run.ctx.facts, run.state)
    step = RehearseMigration()
    BackupDatabase().run(run)
    assert not step.is_done(run)

    step.run(run)

    assert step.is_done(run)
    done = run.state.get("rehearsal")
    assert done["dump"] == run.state.get("dump") and done["skipped"] is None
    assert done["seconds"] > 0 and done["rows"] > 0 and done["error"] is None
    assert scratch_left(db) == []
    assert estimates.seconds(MigrateDatabase(), run.ctx.facts, run.state) == max(
        round(done["seconds"], 1), 0.1)
    assert estimates.seconds(MigrateDatabase(), run.ctx.facts) == rule  # nothing measured
    run.ctx.facts.close()


def test_the_step_refuses_with_the_migrations_error_and_what_to_do(make_db, tmp_path):
    db = cloud(make_db, "sqlite", "3.9.0")
    _stray_table(db)
    run = _run(db, tmp_path)
    BackupDatabase().run(run)

    with pytest.raises(Refused) as err:
        RehearseMigration().run(run)

    text = err.value.render()
    assert "em_ldap_bindings" in err.value.why
    assert "was not touched" in err.value.what
    assert "skylift upgrade resume" in err.value.next and "rollback" in err.value.next, text
    assert not RehearseMigration().is_done(run)
    assert run.state.get("rehearsal")["error"] == err.value.why
    assert scratch_left(db) == []
    # the estimate does not trust a failed rehearsal
    assert estimates.seconds(MigrateDatabase(), run.ctx.facts, run.state) == \
        estimates.seconds(MigrateDatabase(), run.ctx.facts)
    run.ctx.facts.close()


def test_a_resumed_step_restores_afresh_when_the_kept_copy_may_be_half_migrated(make_db,
                                                                                 tmp_path):
    db = cloud(make_db, "sqlite")
    run = _run(db, tmp_path)
    BackupDatabase().run(run)
    scratch = rehearsal.scratch_of(db)
    # the first attempt died mid-migration: the copy is half migrated, and no longer kept
    run.state.set("rehearsal_copy_of", None)
    eng = scratch.engine()
    with eng.begin() as conn:
        conn.execute(sa.text("DROP TABLE hosts"))
    eng.dispose()

    RehearseMigration().run(run)

    assert run.state.get("rehearsal")["error"] is None
    assert scratch_left(db) == []
    run.ctx.facts.close()


def test_undo_drops_a_kept_copy(make_db, tmp_path):
    db = cloud(make_db, "postgresql")
    run = _run(db, tmp_path)
    BackupDatabase().run(run)
    assert scratch_left(db) == [rehearsal.scratch_name(db)]

    BackupDatabase().undo(run)
    RehearseMigration().undo(run)  # nothing left to drop: fine

    assert scratch_left(db) == []
    assert Path(run.state.get("dump")).exists()  # the dump is a backup: it stays
    run.ctx.facts.close()
