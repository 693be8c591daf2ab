"""The cloud's database at install: created at the installer's release when it does not
exist, kept when it is at that release, refused when older (that is an upgrade) or newer."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from skylift.db import migrate as db_migrate
from skylift.db.engine import Database, create_database
from skylift.errors import SkyliftError
from skylift.lineage import version_key
from skylift.mn import settings
from skylift.install.spec import DEFAULT_AGENT_PORT


@dataclass
class DbState:
    """What install finds: `action` create (empty or missing), keep (same release), refuse."""

    display: str
    release: str | None  # None: empty or missing
    exists: bool  # False: a server database to CREATE, or a SQLite file to make
    action: str  # "create", "keep", "refuse"
    problem: str = ""  # why refused
    remedy: str = ""

    def to_dict(self) -> dict:
        return {"url": self.display, "release": self.release, "exists": self.exists,
                "action": self.action, "problem": self.problem}


def _server_has(db: Database) -> bool:
    """Whether a MariaDB/PostgreSQL database of this name exists on its server."""
    admin = db.with_name("postgres" if db.dialect == "postgresql" else "")
    query = ("SELECT 1 FROM pg_database WHERE datname = :n" if db.dialect == "postgresql"
             else "SELECT 1 FROM information_schema.schemata WHERE schema_name = :n")
    eng = admin.engine()
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text(query), {"n": db.name}).first() is not None
    except sa.exc.SQLAlchemyError as exc:
        raise db.error("cannot reach the database server", exc) from None
    finally:
        eng.dispose()


def inspect(db: Database, release: str, resuming: bool = False) -> DbState:
    """Where db stands for installing release (reads only; raises DatabaseError when the
    server cannot be reached). resuming: a killed install of this release was creating this
    database, so an older or half-migrated one is its own work, to be completed."""
    display = db.display()
    if db.dialect == "sqlite":
        if db.missing_file():
            return DbState(display, None, False, "create")
    elif not _server_has(db):
        return DbState(display, None, False, "create")
    try:
        st = db_migrate.status(db)
    except SkyliftError as exc:  # a revision this code does not know: a newer release's
        return DbState(display, None, True, "refuse", exc.what, exc.next)
    if st.release is None or (resuming and version_key(st.release) <= version_key(release)
                              and (st.release != release or not st.complete)):
        return DbState(display, st.release, True, "create")
    if not st.complete:
        return DbState(display, st.release, True, "refuse",
                       f"the database {display} stopped between two revisions of {st.release}",
                       "finish that migration (`skylift db migrate`) or restore a dump, then "
                       "run the upgrade")
    if st.release == release:
        return DbState(display, st.release, True, "keep")
    if version_key(st.release) < version_key(release):
        return DbState(display, st.release, True, "refuse",
                       f"the database {display} holds a {st.release} cloud, older than the "
                       f"installer's {release}",
                       f"that is an upgrade: run `skylift upgrade run` with the {release} "
                       "artefacts (it backs the database up first)")
    return DbState(display, st.release, True, "refuse",
                   f"the database {display} holds a {st.release} cloud, newer than the "
                   f"installer's {release}",
                   f"install {st.release} or newer, or give another database with --db")


def prepare(db: Database, state: DbState, release: str, agent_port: int | None) -> str:
    """Create (or keep) the database; returns what was done: created / kept."""
    if state.action == "refuse":  # preflight refuses first; never migrate past this
        raise AssertionError(state.problem)
    if not state.exists and db.dialect != "sqlite":
        create_database(db, db.name)
    if state.action == "create":
        db_migrate.migrate(db, to=release)
        done = "created"
    else:
        done = "kept"
    if done == "created":
        set_agent_port(db, agent_port if agent_port is not None else DEFAULT_AGENT_PORT)
    elif agent_port is not None:
        set_agent_port(db, agent_port)
    return done


def set_agent_port(db: Database, port: int | None) -> int:
    """The cloud's host.agentPort: port, else the one the cloud has (default 7070)."""
    eng = db.engine()
    try:
        with eng.connect() as conn:
            have = settings.read(conn, "host", "agentPort")
        if port is None:
            return int(have or settings.DEFAULTS[("host", "agentPort")])
        if have != str(port):
            settings.set_setting(eng, "host", "agentPort", port)
        return port
    finally:
        eng.dispose()
