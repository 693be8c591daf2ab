"""A database password never shows: not on a command line, in the journal, state, report,
config or logs — through a whole upgrade on MariaDB with a password-protected account."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from skylift.db.engine import Database
from skylift.lab.artefacts import build_for_upgrade
from skylift.lab.installation import LabSpec, down, up
from tests_support import ADMIN_URL

PASSWORD = "Pw-" + uuid.uuid4().hex[:10]


@pytest.fixture
def protected_db():
    user, name = f"sk_{uuid.uuid4().hex[:6]}", f"skylift_pw_{uuid.uuid4().hex[:6]}"
    admin = Database.from_string(ADMIN_URL).engine(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}`"))
        conn.execute(sa.text(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'"))
        conn.execute(sa.text(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1'"))
    yield f"mysql://{user}@127.0.0.1:3306/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'"))
    admin.dispose()


def _scan_cmdlines(stop: threading.Event, seen: list[str]) -> None:
    while not stop.is_set():
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if PASSWORD in cmd:
                    seen.append(cmd)
        stop.wait(0.05)


def test_the_password_never_shows_during_an_upgrade(protected_db, skylift_home):
    state = up(LabSpec(name="secret", release="3.9.0", hosts=2, vms=2, driver="process",
                       db_url=protected_db, db_password=PASSWORD))
    try:
        mn_home = Path(state["mn"]["home"])
        arts = build_for_upgrade(mn_home)
        seen: list[str] = []
        stop = threading.Event()
        scanner = threading.Thread(target=_scan_cmdlines, args=(stop, seen), daemon=True)
        scanner.start()
        out = subprocess.run(
            [sys.executable, "-m", "skylift.cli.main", "upgrade", "run", "--offline",
             "--image", str(arts.image), "--installer", str(arts.installer),
             "--tool", str(arts.tool)],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
            env=dict(os.environ, SKYLIFT_HOME=str(mn_home), SKYLIFT_DB_PASSWORD=PASSWORD))
        stop.set()
        scanner.join()
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert seen == []
        assert PASSWORD not in out.stdout + out.stderr
        for path in skylift_home.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert PASSWORD.encode() not in path.read_bytes(), path
        journal = mn_home / "upgrade" / "current" / "journal.jsonl"
        assert oct(journal.stat().st_mode & 0o777) == "0o600"
    finally:
        down("secret")
