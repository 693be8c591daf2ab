"""Shared fixtures: real database servers (checked once per session) and a clean database per test.

The servers are started by scripts/services.sh; a server that is not reachable fails the test
run (it is a broken setup, never a skip).
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from skylift.db.engine import Database, create_database, drop_database
from tests_support import ADMIN_URL as MARIADB_ADMIN_URL

SERVER_URLS = {
    "sqlite": None,
    "mysql": MARIADB_ADMIN_URL,
    "postgresql": os.environ.get("SKYLIFT_TEST_POSTGRES",
                                 "postgresql://postgres@127.0.0.1:5432/postgres"),
}
DIALECTS = list(SERVER_URLS)


@pytest.fixture(autouse=True)
def skylift_home(tmp_path, monkeypatch):
    """Every test gets its own state folder."""
    home = tmp_path / "skylift-home"
    monkeypatch.setenv("SKYLIFT_HOME", str(home))
    monkeypatch.delenv("SKYLIFT_DB_PASSWORD", raising=False)
    return home


_checked: set[str] = set()


def server(dialect: str, tmp_path) -> Database:
    """The server of this dialect (a SQLite file for sqlite), checked reachable once."""
    if dialect == "sqlite":
        return Database.from_string(f"sqlite:///{tmp_path / 'server.db'}")
    db = Database.from_string(SERVER_URLS[dialect])
    if dialect not in _checked:
        eng = db.engine()
        try:
            with eng.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # a missing server is a failed setup
            pytest.fail(f"{dialect} server not reachable at {db.display()}: {exc}; "
                        "run scripts/services.sh", pytrace=False)
        finally:
            eng.dispose()
        _checked.add(dialect)
    return db


@pytest.fixture
def make_db(tmp_path):
    """Factory: a new empty database on the server of a dialect, dropped after the test."""
    made: list[Database] = []

    def _make(dialect: str) -> Database:
        db = create_database(server(dialect, tmp_path))
        made.append(db)
        return db

    yield _make
    for db in made:
        drop_database(db)


@pytest.fixture(params=DIALECTS)
def fresh_db(request, make_db) -> Database:
    """A clean database on each dialect in turn."""
    return make_db(request.param)


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium (tests/browser_kit.py) for the whole session, quit at its end."""
    from browser_kit import chrome  # here, not at the top: only the browser tests need Selenium

    with chrome() as driver:
        yield driver


@pytest.fixture
def browser(chromium):
    """The session's Chromium for one test, left on a blank page after it: a console page
    left open would keep polling (and costing CPU) through every later test.

    Shared state (cookies, storage, the console log) is the tests' own business.
    """
    yield chromium
    chromium.get("about:blank")
