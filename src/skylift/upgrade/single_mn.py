"""The single-MN upgrade procedure as a plan, and how to run, resume and roll it back.

This is the only place that knows the order of the procedure. Every manual step of the old
product is a step here: obtain and verify the artefacts, VM HA off (remembering its value),
back up the database and the tool, refresh the local repo, upgrade the MN, reconnect and
upgrade every agent, prove the cloud, VM HA back to what it was.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from skylift.engine.events import EventBus
from skylift.engine.journal import Journal, JournalRun
from skylift.engine.plan import Phase, Plan
from skylift.engine.runner import RunResult, rollback as engine_rollback, run_plan
from skylift.errors import OperationFailed, Refused, SkyliftError
from skylift.upgrade.context import UpgradeContext
from skylift.mn.settings import held_off_message
from skylift.upgrade.mn_instances import MnInstances, describe
from skylift.upgrade.report import collect_measured, write_plan, write_report
from skylift.upgrade.run import UpgradeRun, journal_path, run_dir
from skylift.upgrade.run_state import RunState
from skylift.upgrade.steps import management_node as mn_steps
from skylift.upgrade.steps import preflight, protect, reconnect, repo, verify_cloud

PLAN_ID = "upgrade-single-mn"


def build_plan(incremental: bool) -> Plan:
    """The phases and steps of a single-MN upgrade (offline, or incremental from a repo URL)."""
    obtain = [preflight.FetchArtefacts()] if incremental else []
    return Plan(PLAN_ID, [
        Phase("preflight", "obtain and verify the artefacts, run every check",
              obtain + [preflight.VerifyArtefacts(), preflight.Checks()]),
        Phase("protect", "VM HA off, the cloud recorded, database and tool backed up",
              [protect.VmHaOff(), protect.RecordCloud(), protect.BackupDatabase(),
               protect.RehearseMigration(), protect.BackupTool()]),
        Phase("repo", "refresh the local repository from the OS image",
              [repo.RefreshLocalRepo()]),
        Phase("management-node", "new MN software beside the old, migrate, start",
              [mn_steps.InstallSoftware(), mn_steps.PrepareNewMn(),
               mn_steps.StartMaintenanceMn(),
               mn_steps.DrainAndStopMn(), mn_steps.MigrateDatabase(), mn_steps.StartNewMn(),
               mn_steps.StopMaintenanceMn()]),
        Phase("reconnect", "every host, storage and vRouter reconnects with its agent upgraded",
              [reconnect.ReconnectAgents()]),
        Phase("verify", "prove that nothing was lost, then VM HA back as it was",
              [verify_cloud.Prove(), verify_cloud.VmHaRestore()]),
    ], description="upgrade a single-MN cloud to the newest release")


def _archive_finished(home: Path) -> None:
    """Move a finished run's folder aside so a new run starts with a clean state."""
    folder = run_dir(home)
    if not folder.exists():
        return
    state = _last_run(home)
    if state is None or state.finished:
        dest = home / "upgrade" / "history" / time.strftime("%Y%m%dT%H%M%S")
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.move(str(folder), dest)


def params_of(ctx: UpgradeContext, incremental: bool) -> dict:
    """What the journal records of a run (enough to resume it; never a secret)."""
    return {"incremental": incremental, "target": ctx.target.version,
            "db": ctx.db.display(), "mn_url": ctx.mn_url, "node_root": str(ctx.node_root),
            "artefacts": ctx.artefacts.to_dict()}


def _last_run(home: Path) -> JournalRun | None:
    """What the journal says of its last run (read without the lock), None if none."""
    if not journal_path(home).exists():
        return None
    journal = Journal.open(journal_path(home))
    journal.close()
    return journal.state


def last_params(home: Path) -> dict | None:
    """The parameters of the journal's last run, if any."""
    state = _last_run(home)
    return dict(state.params) if state else None


def already_at_target(ctx: UpgradeContext) -> str | None:
    """Why a new run has nothing to do (the cloud's database is at the target), or None."""
    st = status(ctx.home)
    if st is not None and st["status"] not in ("ok", "refused", "rolled_back"):
        return None  # an unfinished run: `run` refuses it with what to do
    try:
        release = ctx.facts.release
    except SkyliftError:
        return None  # the checks say what is wrong with the database
    if release != ctx.target.version:
        return None
    if ctx.artefacts.paths and ctx.artefacts_release != release:
        return None  # artefacts of another release (or refused): the run says what is wrong
    return f"the cloud is already at {release}: there is nothing to upgrade"


def _journal(ctx: UpgradeContext) -> Journal:
    journal = Journal.open(journal_path(ctx.home))
    journal.register_secret(ctx.db.url.password)
    journal.register_secret(ctx.mn_token)
    return journal


def run(ctx: UpgradeContext, *, incremental: bool, events: EventBus | None = None,
        resume: bool = False, accept_pending: bool = False) -> tuple[RunResult, Path]:
    """Run (or resume) the upgrade; returns the result and the report's Markdown path.

    What a watcher measures beside the run and emits on `events` as Measured (by the time
    the run finishes) goes into the report. A run that fails writes its report too.
    """
    if not resume:
        _archive_finished(ctx.home)
    plan = build_plan(incremental)
    if incremental:  # what it downloads has known names: a resume finds them again
        for kind, path in preflight.fetched_paths(run_dir(ctx.home), ctx.target.version,
                                                  ctx.mn_os).items():
            setattr(ctx.artefacts, kind, path)
    up = UpgradeRun(ctx, run_dir(ctx.home), events or EventBus())
    journal = _journal(ctx)
    stop_collecting = up.events.subscribe(collect_measured(up.state))
    params = params_of(ctx, incremental)
    if accept_pending:
        params["accept_pending"] = True  # the journal records the operator's choice
    write_plan(plan, up.run_dir)
    try:
        try:
            result = run_plan(plan, up, journal, events=up.events, resume=resume,
                              params=params)
        except BaseException:  # failed, refused, or interrupted (Ctrl+C, SIGTERM)
            if journal.state is not None:  # a run started: say where it stopped, and why
                try:
                    write_report(plan, up.state, up.run_dir, journal)
                except Exception:  # the reason it stopped matters more than its report
                    pass
            raise
        report = write_report(plan, up.state, up.run_dir, journal)
    finally:
        stop_collecting()
        journal.close()
        ctx.close()
    return result, report


def finish(ctx: UpgradeContext, *, incremental: bool,
           events: EventBus | None = None) -> tuple[RunResult, Path]:
    """Finish a run stopped in the agents' phase without the resources still pending: the
    proof names them, VM HA goes back as it was, and the MN upgrades each when it returns."""
    st = status(ctx.home)
    if st is None:
        raise Refused("there is no upgrade to finish", why=f"no journal in {run_dir(ctx.home)}",
                      next="start one with `skylift upgrade run`")
    if st["status"] in ("ok", "refused", "rolled_back"):
        raise Refused(f"the last upgrade run is {st['status'].replace('_', ' ')}: there is "
                      "nothing to finish", next="`skylift upgrade status` says how it ended")
    plan = build_plan(bool(st["incremental"]))
    state = _last_run(ctx.home)
    before = [ps.key for ps in plan.steps()]
    before = before[:before.index(f"reconnect/{reconnect.ReconnectAgents.id}")]
    missing = [k for k in before if k not in state.done]
    if missing:
        raise Refused(f"the run stopped before the agents' phase (at {missing[0]}): it cannot "
                      "be finished without some agents",
                      why="finishing with pending resources is only for agents that do not "
                          "return; the management node itself is not upgraded yet",
                      next="fix the cause and `skylift upgrade resume`, or roll back")
    RunState(run_dir(ctx.home)).set(reconnect.ACCEPT, True)
    return run(ctx, incremental=incremental, events=events, resume=True, accept_pending=True)


def rollback(ctx: UpgradeContext, *, incremental: bool,
             events: EventBus | None = None) -> list[str]:
    """Undo a run that has not passed the point of no return (refused after it); returns what
    was taken back, in words. Ends with exactly one MN serving, the previous one."""
    st = status(ctx.home)
    if st is None:
        raise Refused("there is no upgrade to roll back",
                      why=f"no journal in {run_dir(ctx.home)}",
                      next="nothing to do")
    if st["status"] in ("ok", "refused"):
        what, why, next_ = _not_to_roll_back(st, ctx)
        raise Refused(what, why=why, next=next_)
    plan = build_plan(incremental)
    up = UpgradeRun(ctx, run_dir(ctx.home), events or EventBus())
    journal = _journal(ctx)
    try:
        undone = engine_rollback(plan, up, journal, events=up.events)
        _one_mn_serving(up)
    finally:
        journal.close()
        ctx.close()
    steps = {ps.key: ps.step for ps in plan.steps()}
    return [steps[k].undo_summary for k in undone if steps[k].undo_summary]


def _not_to_roll_back(st: dict, ctx: UpgradeContext) -> tuple[str, str, str]:
    """What, why and next for a rollback asked of a run that ended on its own."""
    if st["status"] == "refused":
        return ("there is nothing to roll back",
                "the last run was refused before it changed anything",
                "fix what it named (`skylift upgrade status`), then `skylift upgrade run`")
    dump = RunState(run_dir(ctx.home)).get("dump")
    return (f"the upgrade to {st['target']} has finished; a finished upgrade is not rolled "
            "back", "the new MN has reconnected and upgraded the agents since",
            "to go back all the same, stop the MN and restore the pre-upgrade dump with "
            f"`skylift db restore {dump}`" if dump else "nothing to do")


def _one_mn_serving(up: UpgradeRun) -> None:
    """Fail unless exactly one recorded MN runs and is the port's only listener."""
    mns = MnInstances(up)
    if mns.old() is None:
        return  # the MN was never touched
    serving = mns.serving()
    if len(serving) != 1 or not mns.only(serving[0]):
        raise OperationFailed(
            "the rollback did not end with exactly one management node serving",
            why=f"running: {describe(serving)}; listening on port {up.mn.port}: "
                f"{sorted(mns.listeners()) or 'none'}",
            next="run `skylift upgrade rollback --yes` again")


def still_pending(home: Path) -> list[dict] | None:
    """What the MN reports pending now (None when it cannot say: not running, older)."""
    import httpx

    from skylift.mn.auth import read_token, token_path
    from skylift.mn.launch import mn_client

    params = last_params(home)
    if not params or not token_path(home).exists():
        return None
    try:
        with mn_client(params["mn_url"], read_token(token_path(home)), timeout=5) as client:
            resp = client.get("/v1/connections")
    except httpx.HTTPError:
        return None
    return resp.json().get("pending") if resp.status_code == 200 else None


def status(home: Path) -> dict | None:
    """Where the last upgrade stands (from its journal), or None when there was none."""
    state = _last_run(home)
    if state is None:
        return None
    if state.plan_id == PLAN_ID:
        plan = build_plan(bool(state.params.get("incremental")))
    else:  # the multi-MN procedure's run: the same journal, its own plan
        from skylift.upgrade import multi_mn

        plan = multi_mn.build_plan()
    keys = [ps.key for ps in plan.steps()]
    report = run_dir(home) / "report.md"
    run_state = RunState(run_dir(home))
    accepted = run_state.get(reconnect.ACCEPTED)
    ha_held = (state.status not in ("ok", "refused", "rolled_back")
               and "ha_previous" in run_state)
    return {"run_id": state.run_id, "status": state.status, "target": state.params.get("target"),
            "incremental": bool(state.params.get("incremental")),
            "steps_done": len([k for k in keys if k in state.done]), "steps": len(keys),
            "in_flight": state.in_flight, "failed": dict(state.failed),
            "resumes": state.resumes, "report": str(report) if report.exists() else None,
            "pending": accepted if accepted is not None else run_state.get(reconnect.PENDING)
            or [],
            "pending_accepted": accepted is not None,
            "vm_ha_held_off": ha_held,
            "vm_ha_message": held_off_message(f"upgrade to {state.params.get('target')}")
            if ha_held else None}

