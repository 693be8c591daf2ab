"""Options and resolution shared by the command groups (database URL and its password)."""

from __future__ import annotations

from pathlib import Path

import typer

from skylift.config import load_config
from skylift.db.engine import Database
from skylift.db.engine import PASSWORD_ENV
from skylift.secrets import read_secret

DB_OPTION = typer.Option(None, "--db", help="SQLAlchemy URL of the cloud database "
                         "(default: config file, else SQLite under $SKYLIFT_HOME).")
PASSWORD_FILE_OPTION = typer.Option(
    None, "--password-file", help="File holding the database root password "
    "(else SKYLIFT_DB_PASSWORD; not needed when it is the default).")
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable output.")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Show what would be done; change nothing.")


def resolve_database(db_url: str | None, password_file: Path | None) -> Database:
    """The database named on the command line or in the config, with its password if given."""
    url = db_url or load_config().default_db_url()
    password = read_secret(file=password_file, env_var=PASSWORD_ENV, prompt=None)
    return Database.from_string(url, password)
