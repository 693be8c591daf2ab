"""`skylift db`: status, seed and migrate a cloud database (backup commands: db_backup.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from skylift.cli import db_backup
from skylift.cli.common import (DB_OPTION, DRY_RUN_OPTION, JSON_OPTION, PASSWORD_FILE_OPTION,
                                resolve_database)
from skylift.cli.lab import lab_required
from skylift.cli.output import emit_json, info, table
from skylift.db import migrate as migration
from skylift.lineage import NEWEST

app = typer.Typer(help="The cloud database: status, seed, migrate, dump, verify, restore.",
                  no_args_is_help=True)


@app.command()
def status(db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
           json: bool = JSON_OPTION) -> None:
    """Show the release and revision of a database."""
    st = migration.status(resolve_database(db, password_file))
    if json:
        emit_json(st.to_dict())
        return
    if st.release is None:
        info(f"{st.url}: empty (no skylift schema)")
        return
    where = st.release if st.complete else f"between releases, on the way to {st.release}"
    note = "" if st.release == st.newest else f" (newest is {st.newest})"
    info(f"{st.url}: release {where}, revision {st.revision}{note}")


@app.command()
def seed(
    release: str = typer.Option(..., "--release", help="Release whose schema and data to build."),
    hosts: int = typer.Option(10, "--hosts", help="Number of hosts."),
    vms: int = typer.Option(50, "--vms", help="Number of VM instances."),
    os_release: str = typer.Option("c74", "--os", help="Host OS release (c72, c74, c76)."),
    db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION, json: bool = JSON_OPTION,
) -> None:
    """Fill an empty database with a sample inventory of a release, in bulk."""
    with lab_required():  # sample inventories are lab fixtures, not part of the product
        from skylift.lab.seed import seed as seed_database
    database = resolve_database(db, password_file)
    result = seed_database(database, release, hosts, vms, os_release=os_release)
    if json:
        emit_json(result.to_dict())
        return
    info(f"seeded {database.display()} at release {result.release}: {result.rows} rows "
         f"in {result.seconds:.1f}s")
    table(None, ["resource", "count"], [[k, v] for k, v in result.counts.items()])


@app.command()
def migrate(
    to: str = typer.Option(NEWEST.version, "--to", help="Release to migrate to."),
    db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
    dry_run: bool = DRY_RUN_OPTION, json: bool = JSON_OPTION,
) -> None:
    """Upgrade schema and data to a release (one chained run); downgrades are refused."""
    database = resolve_database(db, password_file)
    progress = None if json else (lambda rev: info(f"  applied {rev.revision}: {rev.summary}"))
    if not json and not dry_run:
        info(f"migrating {database.display()} to {to}")
    result = migration.migrate(database, to, dry_run=dry_run, on_revision=progress)
    if json:
        emit_json(result.to_dict())
        return
    if not result.revisions:
        info(f"already at release {result.to_release}; nothing to do")
    elif dry_run:
        info(f"would migrate from {result.from_release or 'empty'} to {result.to_release}:")
        for rev in result.revisions:
            info(f"  {rev.revision} ({rev.release}): {rev.summary}")
    else:
        info(f"migrated from {result.from_release or 'empty'} to {result.to_release} "
             f"in {result.seconds:.2f}s")


# dump, verify and restore live in their own module; registered last to list them last.
db_backup.register(app)
