"""The multi-MN upgrade procedure: the plan, and how to run, resume and roll it back from the
MN that holds the VIP (the coordinator).

The order, and why (docs/ha.md, "Upgrading the HA cloud"):
1. preflight — the artefacts and the HA suite verified, every check, plus the HA cloud's own
   (every MN over SSH, Galera Synced and Primary, one release, room for a dump on each);
2. protect — the artefacts shipped to every MN and verified there with its own keys; VM HA
   off once; the cloud recorded; this MN's dump verified and the migration rehearsed on it;
   a verified dump on every other MN, one at a time; the tool backed up on every MN;
3. repo — every MN's local repository refreshed;
4. ha-suite — the new HA suite on every MN, keepalived reloaded (the VIP does not move);
5. management-nodes — the new software beside the old on every MN; every MN handed to the
   new software in maintenance (peers first, the VIP holder last, each new MN started before
   the old one drains: the VIP always has an MN answering); the database migrated once;
   every MN switched to the new MN in normal mode, the VIP holder first (no return);
6. reconnect — the hosts reconnect to the MNs that own them and have their agents upgraded;
7. verify — MNs that were behind brought in, the proof, the HA cloud whole, VM HA back.

The journal is this MN's (skylift.engine.journal, flock'ed), replicated to every MN after each
record (`Replicator`), so that the MN that holds the VIP after this one died continues the
same run. Who may continue is decided by identity (`take_over`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from skylift.engine.events import EventBus, Message, RunFinished, StepDone, StepFailed
from skylift.engine.plan import Phase, Plan
from skylift.engine.runner import RunResult, rollback as engine_rollback, run_plan
from skylift.errors import Refused, SkyliftError
from skylift.processes import ProcessId
from skylift.upgrade import single_mn
from skylift.upgrade.context import UpgradeContext
from skylift.upgrade.ha_run import HaUpgradeRun
from skylift.upgrade.report import PLAN_FILE, collect_measured, write_plan, write_report
from skylift.upgrade.run import journal_path, run_dir
from skylift.upgrade.run_state import STATE_FILE, RunState
from skylift.upgrade.steps import ha_members as each
from skylift.upgrade.steps import preflight, protect, reconnect, verify_cloud
from skylift.upgrade.steps.protect import CLOUD_FILE, INVENTORY_FILE
from skylift.upgrade.steps.verify_ha import ProveCloud, ProveHaCluster

PLAN_ID = "upgrade-multi-mn"
COORDINATOR = "coordinator"


class HaChecks(preflight.Checks):
    """Every preflight check of the single-MN upgrade but the one that refuses several MNs,
    and the HA cloud's own."""

    def checks(self) -> list:
        return checks()


def checks() -> list:
    from skylift.upgrade.checks import ALL
    from skylift.upgrade.checks import ha_members
    from skylift.upgrade.checks.management_nodes import single

    return [c for c in ALL if c is not single] + ha_members.ALL


def build_plan(incremental: bool = False) -> Plan:
    """The phases and steps of a multi-MN upgrade (offline)."""
    return Plan(PLAN_ID, [
        Phase("preflight", "verify the artefacts and the HA suite, run every check",
              [preflight.VerifyArtefacts(), HaChecks()]),
        Phase("protect", "artefacts on every MN, VM HA off, the cloud recorded, a verified "
                         "dump on every MN, the tool backed up",
              [each.ShipArtefacts(), protect.VmHaOff(), protect.RecordCloud(),
               each.BackupDatabase(), protect.RehearseMigration(), each.EachDump(),
               each.EachBackupTool()]),
        Phase("repo", "refresh every MN's local repository from the OS image",
              [each.EachRefreshRepo()]),
        Phase("ha-suite", "the new HA suite and keepalived configuration on every MN",
              [each.EachHaSuite()]),
        Phase("management-nodes", "new software on every MN, migrate once, switch the MNs "
                                  "so the VIP always answers",
              [each.EachInstallSoftware(), each.EachToMaintenance(), each.MigrateDatabase(),
               each.EachToNew()]),
        Phase("reconnect", "every host reconnects to the MN that owns it, agent upgraded",
              [reconnect.ReconnectAgents()]),
        Phase("verify", "bring in any MN left behind, prove nothing was lost and the HA cloud "
                        "is whole, then VM HA back as it was",
              [each.BringMembersIn(), ProveCloud(), ProveHaCluster(),
               verify_cloud.VmHaRestore()]),
    ], description="upgrade an HA cloud of several MNs to the newest release")


def params_of(ctx: UpgradeContext) -> dict:
    """What the journal records of a run (never a secret)."""
    return {"incremental": False, "target": ctx.target.version, "multi_mn": True,
            "artefacts": ctx.artefacts.to_dict(),
            "ha_suite": str(ctx.ha_suite) if ctx.ha_suite else None}


# --- where the run may go on ------------------------------------------------------------------
def vip_holder_check(ctx: UpgradeContext) -> None:
    """Refused (changing nothing) unless this MN is a member and holds the VIP now."""
    from skylift.mn.https import machine_addresses

    members = ctx.members
    if members.me is None:
        raise Refused("this machine is none of the HA cloud's MNs",
                      why=f"no address of the HA record ({', '.join(members.names)}) is here",
                      next="run the upgrade on the MN that holds the VIP")
    if members.cfg.vip not in machine_addresses():
        holder = ctx.ha_view.get("vip_holder")
        m = members.cfg.member(holder) if holder else None
        raise Refused(f"this MN ({members.me.name}) does not hold the VIP {members.cfg.vip}",
                      why="the multi-MN upgrade runs on the VIP holder: it hands its own MN "
                          "over last and first, so the VIP always has an MN answering",
                      next=(f"run the same command on {m.name} ({m.address}), which holds it "
                            "now" if m else "find the VIP holder with `skylift ha status` and "
                            "run it there"))


def _newest_copy(ctx: UpgradeContext) -> tuple[str | None, bytes | None, bytes | None]:
    """(member, journal, state) of the longest copy of the journal among the MNs (this MN's
    own when no other is longer): an MN that was away holds an older copy."""
    members = ctx.members
    here = journal_path(ctx.home)
    best = (None, here.read_bytes() if here.exists() else None, None)
    for m in members.peers():
        if members.reachable(m, timeout=5.0) is not None:
            continue
        text = members.read(m, f"{m.home}/upgrade/current/journal.jsonl")
        if text and (best[1] is None or len(text.encode()) > len(best[1])) and \
                (best[1] is None or text.encode().startswith(best[1].split(b"\n", 1)[0])):
            best = (m.name, text.encode(),
                    (members.read(m, f"{m.home}/upgrade/current/{STATE_FILE}") or "").encode())
    return best


def take_over(ctx: UpgradeContext) -> str | None:
    """Decide whether this MN may continue the run; None, or what happened (a takeover).

    The coordinator is recorded by identity (member, pid, start time) in the run state. This
    MN continues only when that process cannot be running: it is this MN's own (then the
    journal's lock keeps two apart), or its machine answers over SSH and the process is gone,
    or its machine does not answer and its Galera member has left this MN's Primary
    component (a coordinator cut off so stops by itself: HaUpgradeRun.guard). Otherwise
    Refused, naming it.
    """
    members = ctx.members
    name, journal, state = _newest_copy(ctx)
    folder = run_dir(ctx.home)
    if name is not None:  # a peer holds a newer copy: continue from that
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        from skylift.files import write_atomic

        write_atomic(journal_path(ctx.home), journal, mode=0o600)
        if state:
            write_atomic(folder / STATE_FILE, state, mode=0o600)
    owner = RunState(folder).get(COORDINATOR) or {}
    if not owner or owner.get("member") == members.me.name:
        return None
    m = members.cfg.member(owner["member"])
    if m is None:
        return f"took the run over from {owner['member']} (no longer a member)"
    why = members.reachable(m, timeout=5.0)
    if why is None:
        stat = members.read(m, f"/proc/{owner['pid']}/stat")
        if stat and _start_of(stat) == owner.get("start"):
            raise Refused(f"the upgrade goes on at {m.name} ({m.address}), pid {owner['pid']}",
                          why="two coordinators must never act at once",
                          next=f"follow it there (`skylift upgrade status` on {m.name}), or "
                               "stop it there and resume here")
        return f"took the run over from {m.name}: its coordinator (pid {owner['pid']}) is gone"
    if _in_cluster(ctx, m.address):
        raise Refused(f"{m.name} ({m.address}) does not answer over SSH, but its database is "
                      "still in the Galera cluster: its coordinator may still be running",
                      why=why,
                      next=f"if {m.name}'s machine is down, Galera drops it within seconds: "
                           "resume again; if it runs, resume there")
    return f"took the run over from {m.name}: its machine is gone from the cluster ({why})"


def _start_of(stat: str) -> int | None:
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def _in_cluster(ctx: UpgradeContext, address: str) -> bool:
    from skylift.db.wsrep import status as wsrep_status

    try:
        st = wsrep_status(ctx.db, timeout=5.0)
    except SkyliftError:
        return True  # cannot tell: assume the worst
    return any(a.split(":")[0] == address for a in st.incoming_addresses.split(",") if a)


# --- replication of the journal ---------------------------------------------------------------
class Replicator:
    """After every step's end (done, failed) and the run's, the journal and the run folder's
    other files written on every MN, one SSH command per MN, the MNs in parallel (best effort:
    an MN that cannot be reached is tried again 30 s later). A copy a step behind is enough:
    a resume from it re-checks the step that follows with its `is_done`."""

    RETRY = 30.0
    EVENTS = (StepDone, StepFailed, RunFinished)
    # the plan too: every MN's console shows the steps to come (skylift.mn.upgrade_view)
    FILES = ("journal.jsonl", STATE_FILE, INVENTORY_FILE, CLOUD_FILE, PLAN_FILE)

    def __init__(self, run: HaUpgradeRun) -> None:
        self.run = run
        self.away: dict[str, float] = {}

    def __call__(self, event) -> None:
        if isinstance(event, self.EVENTS):
            self.push()

    def push(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        folder = self.run.run_dir
        data = [(name, (folder / name).read_bytes()) for name in self.FILES
                if (folder / name).exists()]
        if not data or not (folder / "journal.jsonl").exists():
            return
        peers = [m for m in self.run.members.peers()
                 if time.monotonic() >= self.away.get(m.name, 0)]

        def one(m) -> None:
            try:
                self.run.members.write_many(m, f"{m.home}/upgrade/current", data)
                self.away.pop(m.name, None)
            except SkyliftError:
                self.away[m.name] = time.monotonic() + self.RETRY

        if peers:
            with ThreadPoolExecutor(len(peers)) as pool:
                list(pool.map(one, peers))


# --- run, resume, rollback, status ------------------------------------------------------------
def run(ctx: UpgradeContext, *, events: EventBus | None = None, resume: bool = False
        ) -> tuple[RunResult, Path]:
    """Run (or resume) the multi-MN upgrade on the VIP holder; the result and the report."""
    vip_holder_check(ctx)
    said = take_over(ctx) if resume else None
    if not resume:
        single_mn._archive_finished(ctx.home)
    plan = build_plan()
    bus = events or EventBus()
    journal = single_mn._journal(ctx)
    journal.register_secret(ctx.ssh_password)
    state = journal.state
    up = HaUpgradeRun(ctx, run_dir(ctx.home), bus,
                      run_id=state.run_id if resume and state else "")
    if said:
        bus.emit(Message(said, level="warning"))
    replicate = Replicator(up)
    stop_replicating = bus.subscribe(replicate)
    stop_collecting = bus.subscribe(collect_measured(up.state))
    bus.subscribe(_on_start(up, journal))
    write_plan(plan, up.run_dir)
    try:
        try:
            result = run_plan(plan, up, journal, events=bus, resume=resume,
                              params=params_of(ctx))
        except BaseException:
            if journal.state is not None:
                try:
                    write_report(plan, up.state, up.run_dir, journal)
                except Exception:  # noqa: BLE001 - why it stopped matters more
                    pass
            raise
        report = write_report(plan, up.state, up.run_dir, journal)
    finally:
        try:
            replicate.push()
        finally:
            stop_replicating()
            stop_collecting()
            journal.close()
            ctx.close()
    return result, report


def _on_start(up: HaUpgradeRun, journal):
    """At the run's start: its id known to the steps, this process recorded as coordinator."""
    from skylift.engine.events import RunStarted

    def handler(event) -> None:
        if isinstance(event, RunStarted):
            up.run_id = journal.state.run_id
            shipped = up.state.get("shipped")
            if shipped:
                up.use_shipped(shipped)
            me = ProcessId.of(os.getpid())
            up.state.set(COORDINATOR, {"member": up.me.name, "address": up.me.address,
                                       "pid": os.getpid(), "start": me.start if me else None})
    return handler


def rollback(ctx: UpgradeContext, *, events: EventBus | None = None) -> list[str]:
    """Undo a run before its point of no return: every MN's previous MN, the database from
    this MN's dump, every MN's HA suite and repository; what was taken back, in words."""
    vip_holder_check(ctx)
    take_over(ctx)
    st = single_mn.status(ctx.home)
    if st is None:
        raise Refused("there is no upgrade to roll back", next="nothing to do")
    if st["status"] in ("ok", "refused"):
        what, why, next_ = single_mn._not_to_roll_back(st, ctx)
        raise Refused(what, why=why, next=next_)
    plan = build_plan()
    journal = single_mn._journal(ctx)
    up = HaUpgradeRun(ctx, run_dir(ctx.home), events or EventBus(),
                      run_id=journal.state.run_id if journal.state else "")
    replicate = Replicator(up)
    stop = up.events.subscribe(replicate)
    try:
        undone = engine_rollback(plan, up, journal, events=up.events)
    finally:
        replicate.push()
        stop()
        journal.close()
        ctx.close()
    steps = {ps.key: ps.step for ps in plan.steps()}
    return [steps[k].undo_summary for k in undone if steps[k].undo_summary]


def status_extra(home: Path) -> dict:
    """What the multi-MN run adds to `upgrade status`: who coordinates, who is behind."""
    state = RunState(run_dir(home))
    return {"coordinator": state.get(COORDINATOR), "behind": state.get("behind") or {},
            "ha_proof": state.get("ha_proof")}
