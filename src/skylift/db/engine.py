"""Connecting to the cloud's database (SQLite, MariaDB or PostgreSQL) from a URL.

The URL never carries the password on a command line: it is read by skylift.secrets and set on
the URL object here, and every URL shown to a person is rendered with the password hidden.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from skylift.errors import DatabaseError, UsageError
from skylift.secrets import redact

# Where a database password is read from when no --password-file is given: never argv.
PASSWORD_ENV = "SKYLIFT_DB_PASSWORD"

DIALECT_DRIVERS = {"sqlite": "sqlite", "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql",
                   "postgresql": "postgresql+psycopg"}


def split_password(url: str | URL) -> tuple[str, str | None]:
    """(the URL with no password at all, its password or None): the URL for config files and
    command lines, the password for PASSWORD_ENV. A text URL without one comes back as is."""
    u = make_url(url)
    if u.password is None and isinstance(url, str):
        return url, None
    # URL.set(password=None) would keep the password: None means "unchanged" there
    bare = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, u.query)
    return bare.render_as_string(hide_password=False), u.password


@dataclass(frozen=True)
class Database:
    """A database location: its URL (with the password, never printed) and derived facts."""

    url: URL

    @classmethod
    def from_string(cls, text: str, password: str | None = None) -> "Database":
        """Parse a URL such as mysql://root@127.0.0.1/zstack; the password comes separately."""
        try:
            url = make_url(text)
        except ArgumentError:
            raise UsageError(
                f"'{text}' is not a database URL",
                why="expected an SQLAlchemy URL",
                next="use e.g. sqlite:///path.db, mysql://root@127.0.0.1/zstack "
                "or postgresql://postgres@127.0.0.1/zstack",
            ) from None
        backend = url.get_backend_name()
        if backend not in DIALECT_DRIVERS:
            raise UsageError(
                f"database kind '{backend}' is not supported",
                why="skylift runs on SQLite, MariaDB and PostgreSQL",
                next="use a sqlite://, mysql:// or postgresql:// URL",
            )
        url = url.set(drivername=DIALECT_DRIVERS[backend])
        if password is not None:
            url = url.set(password=password)
        return cls(url)

    @property
    def dialect(self) -> str:
        """sqlite, mysql (MariaDB) or postgresql."""
        return self.url.get_backend_name()

    @property
    def host(self) -> str:
        """The server's host name, or 'local' for a SQLite file."""
        return self.url.host or "local"

    @property
    def name(self) -> str:
        return self.url.database or ""

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self.url.database) if self.dialect == "sqlite" and self.url.database else None

    def display(self) -> str:
        """The URL as it may be shown: password hidden."""
        return self.url.render_as_string(hide_password=True)

    def url_without_password(self) -> str:
        """The URL with no password at all, for config files and child command lines."""
        return split_password(self.url)[0]

    def with_name(self, name: str) -> "Database":
        """The same server, another database (a file beside it for SQLite)."""
        if self.dialect == "sqlite":
            base = self.sqlite_path or Path("scratch.db")
            return Database(self.url.set(database=str(base.with_name(name + ".db"))))
        return Database(self.url.set(database=name))

    @property
    def transactional_ddl(self) -> bool:
        """Whether a schema change can be rolled back with its transaction (not on MariaDB,
        which commits each one at once)."""
        return self.dialect != "mysql"

    def missing_file(self) -> bool:
        """True for an embedded (SQLite) database whose file does not exist yet."""
        return (self.dialect == "sqlite" and self.url.database not in (None, "", ":memory:")
                and not Path(self.url.database).exists())

    def engine(self, *, ddl_transactions: bool = False, **kwargs) -> Engine:
        """A new engine for this database (the caller disposes it).

        ddl_transactions: on SQLite, make schema changes part of the transaction, as they are
        on PostgreSQL (the sqlite3 module otherwise commits each CREATE/ALTER/DROP at once, so
        a kill inside a migration would leave half a revision behind). Each transaction then
        takes the write lock at its start: meant for the migration, not for serving.
        """
        if self.dialect == "sqlite":
            if self.missing_file():
                # SQLite would create it 0644 at the first connection; the cloud's database
                # is private (its -wal and -shm files take the same mode)
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.close(os.open(self.url.database, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                     0o600))
                except FileExistsError:
                    pass
            eng = sa.create_engine(self.url, **kwargs)

            @sa.event.listens_for(eng, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.close()
                if ddl_transactions:
                    dbapi_conn.isolation_level = None  # no implicit commits: BEGIN is ours

            if ddl_transactions:
                @sa.event.listens_for(eng, "begin")
                def _sqlite_begin(conn):  # pragma: no cover - trivial
                    # IMMEDIATE: a data migration that reads before it writes must not fail
                    # with a stale snapshot because an MN heartbeat committed in between
                    conn.exec_driver_sql("BEGIN IMMEDIATE")

            return eng
        if self.dialect == "mysql":
            kwargs.setdefault("pool_pre_ping", True)
            return sa.create_engine(self.url, **kwargs)
        return sa.create_engine(self.url, **kwargs)

    def check_reachable(self) -> None:
        """Connect once; a failure becomes a DatabaseError that says what to check.

        A missing SQLite file is unreachable, not made: a probe must not create a database.
        """
        if self.missing_file():
            raise DatabaseError(f"cannot reach the database: {self.display()}",
                                why="there is no such file",
                                next="point --db (or db_url in config.toml) at the cloud's "
                                     "database")
        eng = self.engine()
        try:
            with eng.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise self.error("cannot reach the database", exc) from None
        finally:
            eng.dispose()

    def error(self, what: str, exc: Exception) -> DatabaseError:
        """A DatabaseError about this database, with the driver's reason and no password."""
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        reason = redact(reason, self.url.password)
        hint = "check that the server runs and the URL is right"
        if isinstance(exc, OperationalError) and "Access denied" in reason:
            hint = f"give the right password with --password-file or {PASSWORD_ENV}"
        return DatabaseError(f"{what}: {self.display()}", why=reason, next=hint)


def create_database(server: Database, name: str | None = None) -> Database:
    """Create a new empty database on the same server (a new file for SQLite)."""
    name = name or f"skylift_{uuid.uuid4().hex[:12]}"
    target = server.with_name(name)
    if server.dialect == "sqlite":
        return target
    admin = server.with_name("postgres" if server.dialect == "postgresql" else "")
    eng = admin.engine(isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE {quote_ident(server, name)}'))
    finally:
        eng.dispose()
    return target


def drop_database(db: Database) -> None:
    """Drop a database (delete the file for SQLite); missing is fine."""
    if db.dialect == "sqlite":
        path = db.sqlite_path
        if path:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(path) + suffix).unlink(missing_ok=True)
        return
    admin = db.with_name("postgres" if db.dialect == "postgresql" else "")
    eng = admin.engine(isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            if db.dialect == "postgresql":
                conn.execute(sa.text(
                    f"DROP DATABASE IF EXISTS {quote_ident(db, db.name)} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote_ident(db, db.name)}"))
    finally:
        eng.dispose()


def quote_ident(db: Database, name: str) -> str:
    """An identifier quoted for the database's dialect."""
    if not name.replace("_", "").isalnum():
        raise UsageError(f"'{name}' is not a valid database name",
                         next="use letters, digits and underscores")
    return f"`{name}`" if db.dialect == "mysql" else f'"{name}"'
