"""Backups and secrets, running management nodes, the CLI, and a seeded cloud database."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from skylift.cli import db_backup
from skylift.db import backup, dumpers
from skylift.db.engine import Database
from skylift.errors import DatabaseError, DatabaseInUse, Refused
from test_backup_data import contents, mutate, populate

RIGHT = "R1ght-S3cret_pw"
WRONG = "Wr0ng-S3cret!x"


@pytest.fixture
def mariadb_user(make_db):
    """A database on MariaDB and a user with a password who owns it (dropped afterwards)."""
    db = make_db("mysql")
    populate(db, vms=50)
    user = f"bk_{secrets.token_hex(4)}"
    root = db.engine(isolation_level="AUTOCOMMIT")  # root, on the same server
    hosts = ("127.0.0.1", "localhost")
    with root.connect() as conn:
        for host in hosts:
            conn.exec_driver_sql(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{RIGHT}'")
            conn.exec_driver_sql(f"GRANT ALL ON `{db.name}`.* TO '{user}'@'{host}'")
    yield user, db
    with root.connect() as conn:
        for host in hosts:
            conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'{host}'")
    root.dispose()


@pytest.fixture
def spawned(monkeypatch):
    """Every child process started by the dumpers: (argv, env)."""
    calls = []
    real = subprocess.Popen

    def recording(argv, **kwargs):
        calls.append((list(argv), dict(kwargs.get("env") or {})))
        return real(argv, **kwargs)

    monkeypatch.setattr(dumpers.subprocess, "Popen", recording)
    return calls


def as_user(user: str, db: Database, password: str) -> Database:
    return Database.from_string(f"mysql://{user}@127.0.0.1:3306/{db.name}", password)


def test_mariadb_password_only_in_environment(mariadb_user, spawned, tmp_path):
    user, db = mariadb_user
    mine = as_user(user, db, RIGHT)
    result = backup.dump(mine, tmp_path, "nightly")
    backup.restore(result.path, mine, tmp_path)
    tools = sorted({argv[0].rsplit("/", 1)[-1] for argv, _ in spawned})
    assert tools in (["mariadb", "mariadb-dump"], ["mysql", "mysqldump"])
    for argv, env in spawned:
        assert not any(RIGHT in arg for arg in argv), argv
        assert env["MYSQL_PWD"] == RIGHT


def test_postgresql_password_only_in_environment(make_db, spawned, tmp_path):
    db = make_db("postgresql")
    populate(db, vms=20)
    # The test server trusts local connections, so the password is carried but not needed.
    with_pw = Database(db.url.set(password=RIGHT))
    result = backup.dump(with_pw, tmp_path, "nightly")
    backup.verify(result.path, with_pw)  # the scratch database goes beside it
    assert {argv[0].rsplit("/", 1)[-1] for argv, _ in spawned} == {"pg_dump", "psql"}
    for argv, env in spawned:
        assert not any(RIGHT in arg for arg in argv), argv
        assert env["PGPASSWORD"] == RIGHT


def test_wrong_password_never_shown(mariadb_user, tmp_path, monkeypatch):
    user, db = mariadb_user
    monkeypatch.setenv("SKYLIFT_DB_PASSWORD", WRONG)
    url = f"mysql://{user}@127.0.0.1:3306/{db.name}"
    res = CliRunner().invoke(cli_app(), ["dump", "--file-name", "x", "--db", url])
    assert isinstance(res.exception, DatabaseError)
    text = res.exception.render() + json.dumps(res.exception.to_dict()) + res.output
    assert WRONG not in text and "password" in text
    # The client tools' own errors are redacted too (the loader runs `mariadb`).
    with pytest.raises(DatabaseError) as err:
        dumpers.load(as_user(user, db, WRONG), iter([b"SELECT 1;\n"]), tmp_path, replace=False)
    assert "Access denied" in err.value.render() and WRONG not in err.value.render()
    assert WRONG not in str(err.value.__cause__ or "") and err.value.__context__ is None


def make_heartbeat(db: Database, state: str, age: dt.timedelta) -> None:
    meta = sa.MetaData()
    table = sa.Table("mn_heartbeat", meta,
                     sa.Column("uuid", sa.String(32), primary_key=True),
                     sa.Column("hostname", sa.String(255)), sa.Column("pid", sa.Integer),
                     sa.Column("version", sa.String(32)), sa.Column("state", sa.String(32)),
                     sa.Column("heartbeat_at", sa.DateTime))
    eng = db.engine()
    with eng.begin() as conn:
        meta.create_all(conn)
        conn.execute(table.delete())
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        conn.execute(table.insert().values(uuid="mn1", hostname="mn-1", pid=4242,
                                           version="4.3.12", state=state,
                                           heartbeat_at=now - age))
    eng.dispose()


def test_restore_refused_while_mn_runs(fresh_db, tmp_path):
    populate(fresh_db, vms=50)
    backups = tmp_path / "backups"
    result = backup.dump(fresh_db, backups, "nightly")
    mutate(fresh_db)
    make_heartbeat(fresh_db, "running", dt.timedelta(seconds=3))
    before = contents(fresh_db)
    with pytest.raises(DatabaseInUse) as err:
        backup.restore(result.path, fresh_db, backups)
    assert err.value.exit_code == 2 and "mn-1" in err.value.why
    assert contents(fresh_db) == before  # nothing changed, not even a pre-restore dump taken
    assert not list(backups.glob("pre-restore-*"))
    # A stale heartbeat, or a stopped MN, does not hold the restore back.
    make_heartbeat(fresh_db, "running", dt.timedelta(minutes=5))
    assert backup.running_management_nodes(fresh_db) == []
    make_heartbeat(fresh_db, "stopped", dt.timedelta(seconds=1))
    backup.restore(result.path, fresh_db, backups)
    assert "extra_table" not in contents(fresh_db)


def cli_app() -> typer.Typer:
    app = typer.Typer()
    db_backup.register(app)
    return app


def test_cli_dump_verify_restore(make_db, skylift_home):
    db = make_db("sqlite")
    populate(db, vms=30)
    url = f"sqlite:///{db.sqlite_path}"
    run = CliRunner().invoke
    res = run(cli_app(), ["dump", "--file-name", "cli", "--keep", "3", "--db", url, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["path"].startswith(str(skylift_home / "backups")) and out["tables"]["tag"] == 500
    res = run(cli_app(), ["verify", out["path"], "--db", url, "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["ok"] is True
    res = run(cli_app(), ["restore", out["path"], "--db", url])
    assert isinstance(res.exception, Refused) and "--yes" in res.exception.next
    res = run(cli_app(), ["restore", out["path"], "--db", url, "--yes", "--json"])
    assert res.exit_code == 0, res.output
    assert "pre-restore" in json.loads(res.output)["pre_restore"]
    res = run(cli_app(), ["dump", "--file-name", "cli", "--keep", "0", "--db", url])
    assert res.exit_code == 2  # typer refuses keep < 1 before anything runs


def test_seeded_cloud_round_trip(fresh_db, tmp_path):
    """A sample cloud of 3.2.0 migrated to 4.3.12 dumps, verifies and restores, row for row."""
    seed_mod = pytest.importorskip("skylift.lab.seed")
    migrate_mod = pytest.importorskip("skylift.db.migrate")
    seed_mod.seed(fresh_db, "3.2.0", hosts=4, vms=20)
    migrate_mod.migrate(fresh_db, to="4.3.12")
    before = contents(fresh_db)
    result = backup.dump(fresh_db, tmp_path, "before-upgrade")
    assert (result.manifest.release, result.manifest.revision) == ("4.3.12", "r4312a")
    backup.verify(result.path, fresh_db)
    eng = fresh_db.engine()
    with eng.begin() as conn:  # empty the biggest table that nothing refers to
        insp = sa.inspect(conn)
        referred = {fk["referred_table"] for t in before for fk in insp.get_foreign_keys(t)}
        leaf = max(set(before) - referred, key=lambda t: len(before[t]))
        assert before[leaf]
        conn.execute(sa.table(leaf).delete())
    eng.dispose()
    backup.restore(result.path, fresh_db, tmp_path)
    assert contents(fresh_db) == before
