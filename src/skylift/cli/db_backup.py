"""`skylift db dump|verify|restore`: backups of the cloud database (logic in skylift.db.backup)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from skylift.cli.common import DB_OPTION, JSON_OPTION, PASSWORD_FILE_OPTION, resolve_database
from skylift.cli.output import emit_json, info, table
from skylift.config import load_config
from skylift.db import backup
from skylift.errors import Refused


def dump(
    file_name: str = typer.Option(..., "--file-name", help="Name of the dump (e.g. before-upgrade);"
                                  " host and UTC time are added."),
    keep: int = typer.Option(None, "--keep", min=1, help="Keep only the newest N dumps of "
                             "this name."),
    db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION, json: bool = JSON_OPTION,
) -> None:
    """Dump the database into the backup folder (gzip, 0600) with a manifest of every table."""
    result = backup.dump(resolve_database(db, password_file), load_config().backups(),
                         file_name, keep)
    if json:
        emit_json(result.to_dict())
        return
    m = result.manifest
    info(f"dumped {sum(d.rows for d in m.tables.values())} rows of {len(m.tables)} tables "
         f"(release {m.release or 'unknown'}) to {result.path}")
    for path in result.pruned:
        info(f"removed old dump {path}")


def verify(
    file: Path = typer.Argument(..., help="The dump file to verify."),
    db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION, json: bool = JSON_OPTION,
) -> None:
    """Restore a dump into a scratch database on the server and compare every table."""
    result = backup.verify(file, resolve_database(db, password_file))
    if json:
        emit_json(result.to_dict())
        return
    table(None, ["table", "rows", "equal"],
          [[c.table, c.actual_rows, "yes" if c.ok else "NO"] for c in result.checks])
    info(f"{file}: sound; restores to the data it was taken from "
         f"(release {result.manifest.release or 'unknown'}, {len(result.checks)} tables)")


def restore(
    file: Path = typer.Argument(..., help="The dump file to restore."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION, json: bool = JSON_OPTION,
) -> None:
    """Replace the database's content with a dump (a pre-restore dump is taken first)."""
    database = resolve_database(db, password_file)
    if not yes:
        if not sys.stdin.isatty():
            raise Refused("restore replaces the whole database and needs confirmation",
                          why="there is no terminal to ask on", next="add --yes")
        typer.confirm(f"Replace every table of {database.display()} with {file}?", abort=True)
    result = backup.restore(file, database, load_config().backups())
    if json:
        emit_json(result.to_dict())
        return
    info(f"restored {file.name} into {result.database}; "
         f"what it held before is in {result.pre_restore.path}")


def register(app: typer.Typer) -> None:
    """Add the dump, verify and restore commands to the `db` command group."""
    app.command("dump")(dump)
    app.command("verify")(verify)
    app.command("restore")(restore)
