"""`skylift demo`: build an old cloud database and upgrade it, showing what changed."""

from __future__ import annotations

import typer

from skylift.cli.output import info, table
from skylift.config import skylift_home
from skylift.db.engine import Database, drop_database
from skylift.db.inventory import resource_counts
from skylift.db.migrate import migrate
from skylift.db.seed import seed
from skylift.lineage import NEWEST

app = typer.Typer(help="Show an upgrade end to end on the embedded database.",
                  invoke_without_command=True)


@app.callback()
def demo(
    release: str = typer.Option("3.2.0", "--release", help="Release to start from."),
    hosts: int = typer.Option(10, "--hosts"),
    vms: int = typer.Option(50, "--vms"),
) -> None:
    """Seed a cloud database of an old release on SQLite and upgrade it to the newest."""
    db = Database.from_string(f"sqlite:///{skylift_home() / 'demo.db'}")
    drop_database(db)
    info(f"[bold]1.[/] building a {release} cloud database ({hosts} hosts, {vms} VMs) "
         f"in {db.sqlite_path}")
    seed(db, release, hosts, vms)
    eng = db.engine()
    with eng.connect() as conn:
        before = resource_counts(conn)
    info(f"[bold]2.[/] upgrading it to {NEWEST.version}")
    result = migrate(db, NEWEST.version,
                     on_revision=lambda rev: info(f"   {rev.revision}: {rev.summary}"))
    with eng.connect() as conn:
        after = resource_counts(conn)
        admins = conn.exec_driver_sql(
            "SELECT COUNT(*) FROM em_users WHERE is_platform_admin").scalar_one()
    eng.dispose()
    info(f"[bold]3.[/] done in {result.seconds:.2f}s; resources before and after:")
    table(None, ["resource", release, NEWEST.version, ""],
          [[k, before.get(k, 0), after.get(k, 0),
            "kept" if before.get(k, 0) == after.get(k, 0) else "CHANGED"]
           for k in sorted(set(before) | set(after))])
    lost = [k for k in before if before[k] != after.get(k)]
    info(f"legacy vRouters are now VPC vRouters, users are Enterprise users "
         f"({admins} platform admins), LDAP bindings are on Enterprise Management.")
    info("[green]nothing lost[/]" if not lost else f"[red]changed: {', '.join(lost)}[/]")
    if lost:
        raise typer.Exit(1)
