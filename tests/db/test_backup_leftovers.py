"""What a dump, verify or restore killed midway (kill -9) leaves, and how the next run clears it.

A killed SQLite dump leaves its copy of the database, the copy's journal and the `.partial`
dump in the backup folder; a killed verify leaves its scratch folder and scratch database.
The next run removes those whose process is gone, and nothing else: not a running dump's
files, not a file that merely looks alike.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from skylift.db import backup, dumpers
from skylift.db.engine import Database, create_database, drop_database
from skylift.processes import ProcessId
from test_backup_data import populate

PAUSING_DUMP = Path(__file__).with_name("pausing_dump.py")


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def start_paused_dump(db: Database, folder: Path, tmp_path: Path) -> subprocess.Popen:
    """A dump in a child process, stopped halfway through copying the database."""
    marker = tmp_path / f"paused-{time.monotonic_ns()}"
    child = subprocess.Popen([sys.executable, str(PAUSING_DUMP), str(db.sqlite_path),
                              str(folder), str(marker)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if child.poll() is not None:
            pytest.fail(f"the dump ended before pausing: {child.stderr.read().decode()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the dump did not reach the middle of its copy within 60 s")
        time.sleep(0.02)
    return child


def kill(child: subprocess.Popen) -> None:
    child.kill()  # SIGKILL: no finally block, no cleanup of any kind
    child.wait()
    child.stderr.close()


def dead_owner() -> str:
    """The owner part of a scratch name of a process of this host that is gone."""
    proc = subprocess.Popen(["sleep", "60"])
    me = ProcessId.of(proc.pid)
    proc.kill()
    proc.wait()
    return f"{me.pid}_{me.start}_{dumpers._host_id()}"


@pytest.fixture
def sqlite_db(make_db) -> Database:
    db = make_db("sqlite")
    populate(db, vms=300)
    return db


def test_a_dump_killed_mid_copy_leaves_nothing_once_the_next_dump_ran(sqlite_db, tmp_path):
    folder = tmp_path / "backups"
    child = start_paused_dump(sqlite_db, folder, tmp_path)
    kill(child)
    left = names(folder)
    # what the kill left: the copy, its journal and the unfinished dump
    assert any(n.startswith(".sqlite-copy-") and n.endswith(".db") for n in left), left
    assert any(n.endswith(".db-journal") for n in left), left
    assert any(n.endswith(".partial") for n in left), left

    result = backup.dump(sqlite_db, folder, "nightly")

    assert names(folder) == {result.path.name, result.manifest_path.name}
    assert backup.verify(result.path, sqlite_db).ok


def test_the_next_dump_spares_a_running_dump_and_names_not_its_own(sqlite_db, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir(mode=0o700)
    outside = tmp_path / "precious.db"
    outside.write_bytes(b"not skylift's")
    others = {"notes.txt", ".sqlite-copy-mine.db", ".sqlite-copy-12.db.bak",
              "x.sqlite.gz.1.partial", ".nightly.tar.gz.1.partial",
              f".sqlite-copy-{dead_owner()}.dbx"}
    for name in others:
        (folder / name).write_bytes(b"someone's")
    link = f".sqlite-copy-{dead_owner()}.db"  # our name, but a symlink: never followed
    (folder / link).symlink_to(outside)
    child = start_paused_dump(sqlite_db, folder, tmp_path)
    try:
        running = names(folder) - others - {link}
        assert len(running) == 3, running  # the copy, its journal, the partial dump

        first = backup.dump(sqlite_db, folder, "nightly")  # while the other dump runs
        assert running <= names(folder)
    finally:
        kill(child)
    second = backup.dump(sqlite_db, folder, "nightly")

    assert names(folder) == others | {link, first.path.name, first.manifest_path.name,
                                      second.path.name, second.manifest_path.name}
    assert outside.read_bytes() == b"not skylift's"


@pytest.mark.parametrize("owner, age_hours, swept", [
    ("pid-only", 2, True),       # an older skylift's leftover, its process gone
    ("pid-only", 0, False),      # too fresh to judge by a pid alone
    ("own", 48, False),          # this very process: alive
    ("foreign", 48, True),       # another machine's, untouched for two days
    ("foreign", 2, False),       # another machine's: maybe running there
])
def test_owners_that_cannot_be_asked_are_judged_by_quiet_time(tmp_path, owner, age_hours,
                                                              swept):
    dead = dead_owner()
    token = {"pid-only": dead.split("_")[0], "own": dumpers.owner_token(),
             "foreign": dead[:-8] + ("0" * 8 if dumpers._host_id() != "0" * 8 else "1" * 8)
             }[owner]
    path = tmp_path / f".sqlite-load-{token}.db"
    path.write_bytes(b"x")
    when = time.time() - age_hours * 3600
    os.utime(path, (when, when))
    assert dumpers.sweep(tmp_path) == ([path] if swept else [])
    assert path.exists() is not swept


def _databases(server: Database) -> set[str]:
    return set(backup._database_names(server))


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"])
def test_verify_removes_what_a_killed_verify_left(make_db, tmp_path, dialect):
    db = make_db(dialect)
    populate(db, vms=20)
    result = backup.dump(db, tmp_path / "backups", "nightly")
    dead = dead_owner()
    tmp = Path(tempfile.gettempdir())
    left_dir = tmp / f"skylift-verify-{dead}-abc123"
    left_dir.mkdir(mode=0o700)
    (left_dir / "scratch.db").write_bytes(b"a copy of the cloud")
    live_dir = Path(tempfile.mkdtemp(prefix=f"skylift-verify-{dumpers.owner_token()}-"))
    left_db = None
    if dialect != "sqlite":
        left_db = create_database(db, f"skylift_verify_{dead}")
        eng = left_db.engine()
        with eng.begin() as conn:
            conn.execute(sa.text("CREATE TABLE copy_of_the_cloud (id INTEGER PRIMARY KEY)"))
        eng.dispose()
    try:
        assert backup.verify(result.path, db).ok

        assert not left_dir.exists()
        assert live_dir.exists()  # a verify that runs (this process) keeps its folder
        if left_db is not None:
            assert left_db.name not in _databases(db)
    finally:
        live_dir.rmdir()
        if left_dir.exists():
            for p in left_dir.iterdir():
                p.unlink()
            left_dir.rmdir()
        if left_db is not None:
            drop_database(left_db)
