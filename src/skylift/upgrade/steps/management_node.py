"""Upgrade the management node: new software beside the old, handover, migration, restart.

The MN's port never refuses a connection: a maintenance MN (answering "upgrade in progress")
takes the port over before the old MN stops, and the new MN takes it over from the
maintenance one once the database is migrated. Each step ends with exactly one MN running,
chosen and checked by identity (upgrade.mn_instances), whatever a crash left behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathlib import Path

import sqlalchemy as sa

from skylift.db.backup import restore
from skylift.db.migrate import migrate, status
from skylift.errors import OperationFailed
from skylift.release.verify import verify_artefacts
from skylift.upgrade import slots
from skylift.upgrade.mn_instances import MnInstances, describe
from skylift.upgrade.steps import UpgradeStep

if TYPE_CHECKING:
    from skylift.upgrade.run import UpgradeRun


class InstallSoftware(UpgradeStep):
    id = "install-software"
    description = "unpack the new MN software into a slot beside the running one"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 0.5

    def is_done(self, run: UpgradeRun) -> bool:
        return slots.installed(run.ctx.home, run.ctx.target.version)

    def run(self, run: UpgradeRun) -> None:
        # verified again where it is used: the file may have changed since preflight (a
        # resume, a new copy given with --installer, a disk error)
        installer = run.ctx.artefacts.installer
        verify_artefacts([installer], run.ctx.trusted_keys, release=run.ctx.target.version)
        slots.install(run.ctx.home, installer, run.ctx.target.version)


class DrainAndStopMn(UpgradeStep):
    id = "drain-and-stop-mn"
    description = "drain the old MN and hand its port to a maintenance MN of the new software"
    undo_summary = "the previous MN serves again"
    opens_api_window = True  # from here the API answers "upgrade in progress"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 3.0

    def is_done(self, run: UpgradeRun) -> bool:
        mns = MnInstances(run)
        return mns.old() is not None and mns.only(mns.ready("maintenance"))

    def run(self, run: UpgradeRun) -> None:
        mns = MnInstances(run)
        old = mns.record_old()
        if old.proc is not None and mns.listeners() == {old.proc.pid}:
            # the old MN is the port's only listener, so this call reaches it; otherwise a
            # maintenance MN already took the port and the old one drains at its SIGTERM
            run.mn.drain(wait=30.0)
        keep = mns.ready("maintenance") or mns.start("maintenance", maintenance=True,
                                                     slot=run.ctx.target.version)
        mns.keep_only(keep)

    def undo(self, run: UpgradeRun) -> None:
        """Start the MN of the previous software again and stop every other MN."""
        mns = MnInstances(run)
        old = mns.old()
        if old is None:
            return  # nothing was done to the MN
        keep = mns.ready("restored")
        if keep is None:
            slots.switch(run.ctx.home, old.slot)
            # it picks its mode from the database, restored by now if it was migrated
            keep = mns.start("restored", maintenance=False, slot=old.slot)
        mns.keep_only(keep)


class MigrateDatabase(UpgradeStep):
    id = "migrate-database"
    description = "migrate the database schema and data to the new release (one chained run)"
    undo_summary = "database restored from the verified pre-upgrade dump"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0 + rows / 1_000_000  # ~1,000,000 rows/s

    def measured_seconds(self, state) -> float | None:
        """The migration rehearsed on a copy of this database took this long (the API's
        maintenance window, mostly)."""
        rehearsal = state.get("rehearsal") or {}
        took = rehearsal.get("seconds")
        if took is None or rehearsal.get("error"):
            return None
        return max(round(took, 1), 0.1)

    def is_done(self, run: UpgradeRun) -> bool:
        return status(run.ctx.db).release == run.ctx.target.version

    def run(self, run: UpgradeRun) -> None:
        if run.state.get("migration_started") and not run.ctx.db.transactional_ddl:
            # MariaDB commits each schema change at once: an attempt that was killed or
            # failed may have left half a revision, which no migration can continue from.
            # Start again from the verified dump (the maintenance MN steps aside meanwhile).
            mns = MnInstances(run)
            _restore_dump(run, mns)
            mns.start("maintenance", maintenance=True, slot=run.ctx.target.version)
        run.state.set("migration_started", True)
        migrate(run.ctx.db, run.ctx.target.version)

    def undo(self, run: UpgradeRun) -> None:
        """Restore the verified dump (every MN is stopped first: restore refuses under an MN)."""
        _restore_dump(run, MnInstances(run))


def _restore_dump(run: UpgradeRun, mns: MnInstances) -> None:
    """Stop every MN, then put the verified pre-upgrade dump back."""
    mns.keep_only(None)
    restore(Path(run.state.get("dump")), run.ctx.db, run.backup_dir)
    # The dump holds the heartbeat of the MN that ran when it was taken; no MN runs now
    # (the caller starts one, which writes its own), so none of those rows is alive.
    with run.ctx.facts.engine.begin() as conn:
        conn.execute(sa.text("UPDATE mn_heartbeat SET state = 'stopped'"))


class StartNewMn(UpgradeStep):
    id = "start-new-mn"
    description = ("start the new MN from its slot; it reconnects every agent and upgrades "
                   "them (point of no return)")
    point_of_no_return = True
    closes_api_window = True

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 5.0

    def is_done(self, run: UpgradeRun) -> bool:
        mns = MnInstances(run)
        new = mns.ready("new")
        return bool(new and new.mode == "normal" and new.release == run.ctx.target.version
                    and mns.only(new))

    def run(self, run: UpgradeRun) -> None:
        mns = MnInstances(run)
        slots.switch(run.ctx.home, run.ctx.target.version)
        keep = mns.ready("new") or mns.start("new", maintenance=False,
                                             slot=run.ctx.target.version)
        if keep.mode != "normal" or keep.release != run.ctx.target.version:
            mns.stop(keep)  # the maintenance MN keeps the port meanwhile
            raise OperationFailed(
                f"the new management node came up as {keep.release} in {keep.mode} mode",
                why=f"expected {run.ctx.target.version} in normal mode",
                next="read the MN log under $SKYLIFT_HOME/mn, fix the cause, then resume")
        mns.keep_only(keep)
        if not mns.only(keep):
            # who else serves, by pid: another MN may share the port (SO_REUSEPORT), one this
            # upgrade did not start
            raise OperationFailed(
                "the new management node is not the only one serving",
                why=f"running: {describe(mns.serving())}; listening on port {run.mn.port}: "
                    f"{sorted(mns.listeners()) or 'none'} (kept: pid {keep.proc.pid})",
                next="stop the other listeners, then `skylift upgrade resume`")
