"""The steps of the multi-MN upgrade that act on every MN, each MN by its own address.

A step runs one member operation (skylift.upgrade.member_ops) on each MN in an order chosen so
that the VIP always has an MN behind it that answers: the peers first and the VIP holder last
while the MNs go *into* the upgrade, the VIP holder first when they come *out* of it. It is
done when every MN has done it or is behind (could not be reached: the run goes on and brings
it in at the end, BringMembersIn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from skylift.db.backup import restore
from skylift.db.migrate import migrate
from skylift.errors import OperationFailed, Refused
from skylift.ha_record import HaMember
from skylift.mn.launch import mn_client
from skylift.upgrade.ha_run import DUMPS, SHIPPED
from skylift.upgrade.members import MemberUnreachable
from skylift.upgrade.steps import UpgradeStep, management_node, protect

if TYPE_CHECKING:
    from skylift.upgrade.ha_run import HaUpgradeRun


class EachMember(UpgradeStep):
    """One member operation on every MN (see the module's text)."""

    op = ""
    holder_last = True  # False: the VIP holder (this MN) first
    # "opened"/"closed": the VIP holder's own MN handing over opens/closes the API's
    # maintenance window on the VIP (the report's figure)
    vip_window: str | None = None
    undo_op: str | None = None

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0

    def targets(self, run: HaUpgradeRun) -> list[HaMember]:
        peers = run.members.peers()
        return peers + [run.me] if self.holder_last else [run.me] + peers

    def is_done(self, run: HaUpgradeRun) -> bool:
        done, behind = run.done_on(self.id), run.behind()
        return all(m.name in done or m.name in behind for m in run.members.cfg.members)

    def run(self, run: HaUpgradeRun) -> None:
        for m in self.targets(run):
            if m.name in run.done_on(self.id) or m.name in run.behind():
                continue
            try:
                run.record(self.id, m.name, self.on(run, m))
            except MemberUnreachable as exc:
                run.unreachable(m, exc)
                continue
            if m.name == run.me.name and self.vip_window:
                run.state.set(f"vip_window_{self.vip_window}", time.time())

    def on(self, run: HaUpgradeRun, m: HaMember) -> dict:
        return run.call(m, self.op)

    def undo(self, run: HaUpgradeRun) -> None:
        if self.undo_op is None:
            return
        for m in reversed(self.targets(run)):
            if m.name not in run.done_on(self.id):
                continue
            try:
                run.call(m, self.undo_op)
            except MemberUnreachable as exc:
                run.unreachable(m, exc)
                continue
            run.state.set(f"each/{self.id}", {k: v for k, v in run.done_on(self.id).items()
                                               if k != m.name})


class ShipArtefacts(EachMember):
    id = "ship-artefacts"
    description = ("put the artefacts and the HA suite on every MN and verify them there with "
                   "its own trusted keys")

    def on(self, run: HaUpgradeRun, m: HaMember) -> dict:
        shipped = run.ship(m)
        if run.state.get(SHIPPED) != shipped:
            run.state.set(SHIPPED, shipped)
        answer = run.call(m, "verify")
        if m.name == run.me.name:
            run.use_shipped(shipped)
        return answer


class BackupDatabase(protect.BackupDatabase):
    """The VIP holder's own dump, verified by a restore kept for the rehearsal."""

    def run(self, run: HaUpgradeRun) -> None:
        super().run(run)
        dumps = run.state.get(DUMPS) or {}
        run.state.set(DUMPS, {**dumps, run.me.name: {"path": run.state.get("dump")}})


class EachDump(EachMember):
    id = "dump-every-mn"
    description = "a dump of every other MN's Galera member, each verified by a restore"
    op = "dump"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 2.0 + rows / 5_000

    def is_done(self, run: HaUpgradeRun) -> bool:
        dumps, behind = run.state.get(DUMPS) or {}, run.behind()
        return all(m.name in dumps or m.name in behind for m in run.members.cfg.members)

    def run(self, run: HaUpgradeRun) -> None:
        for m in self.targets(run):  # one at a time: each restore replicates to every member
            if m.name in (run.state.get(DUMPS) or {}) or m.name in run.behind():
                continue
            try:
                got = run.call(m, "dump")
            except MemberUnreachable as exc:
                run.unreachable(m, exc)
                continue
            run.state.set(DUMPS, {**(run.state.get(DUMPS) or {}), m.name: got})


class EachBackupTool(EachMember):
    id = "backup-tool-every-mn"
    description = "copy the upgrade tool into every MN's backup folder"
    op = "backup-tool"


class EachRefreshRepo(EachMember):
    id = "refresh-repo-every-mn"
    description = "install the OS image into every MN's local repository (old one kept)"
    op = "refresh-repo"
    undo_op = "repo-back"
    undo_summary = "every MN's local repository switched back to the previous release"


class EachHaSuite(EachMember):
    id = "upgrade-ha-suite"
    description = ("install the new HA suite on every MN and reload keepalived with its "
                   "configuration and health check (the VIP stays where it is)")
    op = "ha-suite"
    undo_op = "ha-suite-back"
    undo_summary = "every MN's HA suite and keepalived configuration as before"


class EachInstallSoftware(EachMember):
    id = "install-software-every-mn"
    description = "unpack the new MN software into a slot beside the running one on every MN"
    op = "install-software"


class EachToMaintenance(EachMember):
    id = "mns-to-maintenance"
    description = ("on every MN, the peers first and the VIP holder last: the new software "
                   "takes the port in maintenance before the old MN drains and stops")
    op = "to-maintenance"
    vip_window = "opened"
    undo_op = "to-old"
    undo_summary = "the previous MN serves again on every MN"
    opens_api_window = True

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 3.0

    def run(self, run: HaUpgradeRun) -> None:
        super().run(run)
        # An MN that could not be reached must not serve the old code once the database is
        # migrated: one that answers at its own address is not behind, it is in the way.
        for name in run.behind():
            m = run.members.cfg.member(name)
            if m is not None and _answers(run, m):
                raise OperationFailed(
                    f"{name} ({m.address}) cannot be reached over SSH but its MN answers",
                    why="migrating the database under an MN of the old release would put two "
                        "releases on one database",
                    next=f"restore SSH to {name} (or stop its MN there), then `skylift upgrade "
                         "resume`")


def _answers(run: HaUpgradeRun, m: HaMember) -> bool:
    try:
        with mn_client(run.members.cfg.url_of(m.address), run.ctx.mn_token, timeout=3.0,
                       home=run.ctx.home) as client:
            return client.get("/v1/version").status_code < 500
    except httpx.HTTPError:
        return False


class MigrateDatabase(management_node.MigrateDatabase):
    """Migrate once, through this MN's own member; Galera carries it to the others.

    Galera replicates DDL in total order (TOI): each ALTER runs on every member at once and
    holds the cluster's writes meanwhile. The MNs are all in maintenance then, so nothing but
    the migration writes."""

    def run(self, run: HaUpgradeRun) -> None:
        if run.state.get("migration_started") and not run.ctx.db.transactional_ddl:
            # half a revision may be applied (MariaDB commits DDL at once): start again from
            # this MN's own verified dump, every MN stopped meanwhile
            _restore_everywhere(run)
            for m in EachToMaintenance().targets(run):
                if m.name not in run.behind():
                    try:
                        run.call(m, "to-maintenance")
                    except MemberUnreachable as exc:
                        run.unreachable(m, exc)
        run.state.set("migration_started", True)
        run.guard()
        migrate(run.ctx.db, run.ctx.target.version)

    def undo(self, run: HaUpgradeRun) -> None:
        _restore_everywhere(run)


def _restore_everywhere(run: HaUpgradeRun) -> None:
    """Every MN's MNs stopped, then this MN's own verified dump restored (Galera carries it)."""
    mine = (run.state.get(DUMPS) or {}).get(run.me.name) or {}
    if not mine.get("path") or not Path(mine["path"]).exists():
        raise Refused(f"there is no verified dump of {run.me.name}'s own to restore",
                      why="this MN was behind when the dumps were taken",
                      next="run it on an MN whose dump the run took (`skylift upgrade status` "
                           "lists them); nothing was stopped")
    for m in run.members.cfg.members:
        if m.name in run.behind():
            continue
        try:
            run.call(m, "stop-mns")
        except MemberUnreachable as exc:
            run.unreachable(m, exc)
    run.guard()
    restore(Path(mine["path"]), run.ctx.db, run.backup_dir)
    with run.ctx.facts.engine.begin() as conn:
        conn.execute(sa.text("UPDATE mn_heartbeat SET state = 'stopped'"))


class EachToNew(EachMember):
    id = "mns-to-new"
    description = ("on every MN, the VIP holder first: the new MN in normal mode takes the "
                   "port from the maintenance one (point of no return)")
    op = "to-new"
    vip_window = "closed"
    holder_last = False
    point_of_no_return = True
    closes_api_window = True

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 5.0


# The member operations, in the order that brings one MN from the old release to the new once
# the database is migrated: what a behind MN needs when it is back.
CATCH_UP = ("verify", "backup-tool", "refresh-repo", "ha-suite", "install-software", "to-new")


class BringMembersIn(UpgradeStep):
    id = "bring-mns-in"
    description = "bring in every MN that was behind (unreachable) when its turn came"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0

    def is_done(self, run: HaUpgradeRun) -> bool:
        return not [n for n in run.behind() if run.members.cfg.member(n) is not None]

    def run(self, run: HaUpgradeRun) -> None:
        for name in list(run.behind()):
            m = run.members.cfg.member(name)
            if m is None:  # taken out of the HA cloud since (`skylift ha remove`)
                run.clear_behind(name)
                continue
            try:
                run.ship(m)
                for op in CATCH_UP:
                    run.call(m, op)
            except MemberUnreachable as exc:
                raise OperationFailed(
                    f"{name} ({m.address}) is behind: it is still at the old release",
                    why=exc.why or exc.what,
                    next=f"bring {name}'s machine back and run `skylift upgrade resume` here "
                         f"(it upgrades {name} and finishes), or take it out of the HA cloud "
                         f"with `skylift ha remove {name}` and resume") from None
            run.clear_behind(name)
