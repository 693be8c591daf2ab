"""Upgrade the management node: new software beside the old, handover, migration, restart.

The MN's port never refuses a connection: a maintenance MN (answering "upgrade in progress")
is started beside the old MN and takes the port over before the old MN stops, and the new MN
takes it over from the maintenance one once the database is migrated; each is stopped by a
step of its own after its successor serves, and the new MN's process is started on standby
before all that (its code loaded), so the API's window holds only the migration and the rest
of the new MN's start. Each step ends with exactly one MN running,
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


class PrepareNewMn(UpgradeStep):
    id = "prepare-new-mn"
    description = ("start the new MN's process on standby: its code loaded, neither listening "
                   "nor reading the database until the migration is done")
    undo_summary = "the standby MN stopped"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 0.2

    def is_done(self, run: UpgradeRun) -> bool:
        mns = MnInstances(run)
        return mns.standby("new") is not None or mns.ready("new") is not None

    def run(self, run: UpgradeRun) -> None:
        # Loading the code is most of an MN's start; paid here, it is not in the API's
        # window. A standby this process did not start is stopped by start-new-mn, which
        # then starts the new MN afresh: slower, never wrong.
        mns = MnInstances(run)
        mns.standby("new") or mns.prepare("new", maintenance=False, slot=run.ctx.target.version)

    def undo(self, run: UpgradeRun) -> None:
        mns = MnInstances(run)
        for inst in mns.of_role("new"):
            if inst.status == "standby":
                mns.stop(inst)


class StartMaintenanceMn(UpgradeStep):
    id = "start-maintenance-mn"
    description = ("start a maintenance MN of the new software beside the old one; once it "
                   "listens, new API connections reach it")
    undo_summary = "the previous MN serves alone again"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 2.0

    def is_done(self, run: UpgradeRun) -> bool:
        mns = MnInstances(run)
        return mns.old() is not None and mns.ready("maintenance") is not None

    def run(self, run: UpgradeRun) -> None:
        # Started before the old MN is stopped, so its process start and imports are not part
        # of the API's window: the old MN serves until the maintenance one listens.
        mns = MnInstances(run)
        mns.record_old()  # while it is the port's only listener: its identity, not a guess
        mns.ready("maintenance") or mns.start("maintenance", maintenance=True,
                                              slot=run.ctx.target.version)

    def undo(self, run: UpgradeRun) -> None:
        back_to_old(run)


class DrainAndStopMn(UpgradeStep):
    id = "drain-and-stop-mn"
    description = "stop the old MN (it drains its calls in flight); the maintenance MN serves"
    undo_summary = "the previous MN serves again"
    opens_api_window = True  # from here the API answers "upgrade in progress"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0

    def is_done(self, run: UpgradeRun) -> bool:
        mns = MnInstances(run)
        return mns.old() is not None and mns.only(mns.ready("maintenance"))

    def run(self, run: UpgradeRun) -> None:
        mns = MnInstances(run)
        keep = mns.ready("maintenance") or mns.start("maintenance", maintenance=True,
                                                     slot=run.ctx.target.version)
        # SIGTERM: the old MN finishes its calls in flight, then exits; the new MN waiting on
        # standby is kept for start-new-mn
        mns.keep_only(keep, spare_standby=True)

    def undo(self, run: UpgradeRun) -> None:
        back_to_old(run)


def back_to_old(run: UpgradeRun) -> None:
    """An MN of the previous software, started again from its slot, serves alone; every other
    MN is stopped, the old one too (it may have been told to drain, which cannot be undone)."""
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
        return bool(new and new.mode == "normal" and new.release == run.ctx.target.version)

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
        # the new MN now takes every new connection: the API's window ends here, and the
        # maintenance MN is stopped by the next step
        for other in mns.of_role("new"):
            if other.id != keep.id and mns.alive(other):
                mns.stop(other)


class StopMaintenanceMn(UpgradeStep):
    id = "stop-maintenance-mn"
    description = "stop the maintenance MN (it drains its calls in flight); the new MN serves alone"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0

    def is_done(self, run: UpgradeRun) -> bool:
        mns = MnInstances(run)
        return mns.only(mns.ready("new"))

    def run(self, run: UpgradeRun) -> None:
        mns = MnInstances(run)
        keep = mns.ready("new")
        if keep is None:
            raise OperationFailed("the new management node is not running",
                                  why="it was started by the previous step and is gone",
                                  next="read the MN log under $SKYLIFT_HOME/mn, then resume")
        mns.keep_only(keep)
        if not mns.only(keep):
            # who else serves, by pid: another MN may share the port (SO_REUSEPORT), one this
            # upgrade did not start
            raise OperationFailed(
                "the new management node is not the only one serving",
                why=f"running: {describe(mns.serving())}; listening on port {run.mn.port}: "
                    f"{sorted(mns.listeners()) or 'none'} (kept: pid {keep.proc.pid})",
                next="stop the other listeners, then `skylift upgrade resume`")
