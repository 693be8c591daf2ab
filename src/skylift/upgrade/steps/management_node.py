"""Upgrade the management node: new software beside the old, handover, migration, restart.

The MN's port never refuses a connection: a maintenance MN (answering "upgrade in progress")
takes the port over before the old MN stops, and the new MN takes it over from the
maintenance one once the database is migrated.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from skylift.db.backup import restore
from skylift.db.migrate import migrate, status
from skylift.upgrade.steps import UpgradeStep
from skylift.upgrade import slots


class InstallSoftware(UpgradeStep):
    id = "install-software"
    description = "unpack the new MN software into a slot beside the running one"

    def is_done(self, run) -> bool:
        return slots.installed(run.ctx.home, run.ctx.target.version)

    def run(self, run) -> None:
        slots.install(run.ctx.home, run.ctx.artefacts.installer, run.ctx.target.version)


class MaintenanceHandover(UpgradeStep):
    id = "drain-and-stop-mn"
    description = "drain the old MN and hand its port to a maintenance MN of the new software"

    def is_done(self, run) -> bool:
        old = run.state.get("old_mn")
        now = run.mn.try_version()
        return bool(old and now and now.get("pid") != old["pid"])

    def run(self, run) -> None:
        if "old_mn" not in run.state:
            version = run.mn.version()
            run.state.set("old_mn", {"pid": version["pid"], "release": version["release"],
                                     "slot": slots.current(run.ctx.home)})
        old = run.state.get("old_mn")
        run.mn.drain(wait=30.0)
        run.mn.start_next(maintenance=True,
                          slot=slots.path_of(run.ctx.home, run.ctx.target.version))
        run.mn.stop_pid(old["pid"])

    def undo(self, run) -> None:
        """Start the MN of the previous software again (it picks its mode from the database)."""
        old = run.state.get("old_mn")
        if not old:
            return
        current = run.mn.try_version()
        run.mn.start_next(maintenance=False, slot=slots.path_of(run.ctx.home, old["slot"]))
        slots.switch(run.ctx.home, old["slot"])
        if current:
            run.mn.stop_pid(current["pid"])


class MigrateDatabase(UpgradeStep):
    id = "migrate-database"
    description = "migrate the database schema and data to the new release (one chained run)"

    def is_done(self, run) -> bool:
        return status(run.ctx.db).release == run.ctx.target.version

    def run(self, run) -> None:
        migrate(run.ctx.db, run.ctx.target.version)

    def undo(self, run) -> None:
        """Restore the verified dump (the MN is stopped first: restore refuses under an MN)."""
        current = run.mn.try_version()
        if current:
            run.mn.stop_pid(current["pid"])
        restore(Path(run.state.get("dump")), run.ctx.db, run.backup_dir)
        # The dump holds the heartbeat of the MN that ran when it was taken; no MN runs now
        # (the next undo starts one, which writes its own), so none of those rows is alive.
        with run.ctx.facts.engine.begin() as conn:
            conn.execute(sa.text("UPDATE mn_heartbeat SET state = 'stopped'"))


class StartNewMn(UpgradeStep):
    id = "start-new-mn"
    description = ("start the new MN from its slot; it reconnects every agent and upgrades "
                   "them (point of no return)")
    point_of_no_return = True

    def is_done(self, run) -> bool:
        now = run.mn.try_version()
        return bool(now and now.get("release") == run.ctx.target.version
                    and now.get("mode") == "normal")

    def run(self, run) -> None:
        maintenance = run.mn.try_version()
        slots.switch(run.ctx.home, run.ctx.target.version)
        run.mn.start_next(maintenance=False,
                          slot=slots.path_of(run.ctx.home, run.ctx.target.version))
        if maintenance and maintenance.get("mode") != "normal":
            run.mn.stop_pid(maintenance["pid"])
