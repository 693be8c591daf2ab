"""`skylift upgrade`: check, plan, run, resume, rollback and status of a cloud upgrade."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from skylift.cli.common import DB_OPTION, JSON_OPTION, PASSWORD_FILE_OPTION, resolve_database
from skylift.cli.output import console, emit_json, info, plain
from skylift.cli.progress import RichProgress
from skylift.config import skylift_home
from skylift.engine.checks import run_checks
from skylift.engine.events import EventBus, JsonLinesSink
from skylift.errors import Refused, SkyliftError, UsageError
from skylift.mn.auth import token_path
from skylift.mn.connect_failures import describe
from skylift import ha_record
from skylift.upgrade import multi_mn, single_mn
from skylift.upgrade.checks import ALL as ALL_CHECKS
from skylift.upgrade.context import Artefacts, UpgradeContext

app = typer.Typer(help="Upgrade the cloud to the newest release: check, plan, run, resume, "
                       "rollback.", no_args_is_help=True)

MN_URL_OPTION = typer.Option(None, "--mn-url", help="The management node's API "
                             "(default: config mn_url, else http://127.0.0.1:8080).")


HA_SUITE_OPTION = typer.Option(None, "--ha-suite", help="The HA suite of the new release "
                               "(skylift-ha-<release>.tar): an HA cloud of several MNs.")
SSH_PASSWORD_OPTION = typer.Option(
    None, "--ssh-password-file", help="An HA cloud: file holding the peers' SSH password "
    "(else SKYLIFT_SSH_PASSWORD, else the HA record's key). Never on the command line.")


def _multi(home: Path) -> bool:
    """Whether this MN is one of an HA cloud of several MNs (the multi-MN procedure)."""
    cfg = ha_record.load(home)
    return cfg is not None and len(cfg.members) > 1


def _procedure(home: Path):
    """The procedure of the last run here (by its plan), else the one this cloud needs."""
    state = single_mn._last_run(home)
    if state is not None:
        return multi_mn if state.plan_id == multi_mn.PLAN_ID else single_mn
    return multi_mn if _multi(home) else single_mn


def _ha_inputs(ctx: UpgradeContext, ha_suite: Path | None,
               ssh_password_file: Path | None) -> UpgradeContext:
    from skylift.secrets import read_secret
    from skylift.upgrade.members import SSH_PASSWORD_ENV

    ctx.ha_suite = ha_suite.absolute() if ha_suite else None
    ctx.ssh_password = read_secret(file=ssh_password_file, env_var=SSH_PASSWORD_ENV,
                                   prompt=None)
    return ctx


STALL_OPTION = typer.Option(
    120.0, "--stall-timeout", min=1.0, help="Seconds without one more agent converged before "
    "the wait for the agents fails (the MN keeps retrying them meanwhile).")


def _context(db: str | None, password_file: Path | None, mn_url: str | None,
             artefacts: Artefacts | None = None,
             stall_seconds: float | None = None) -> UpgradeContext:
    ctx = UpgradeContext.on_machine(skylift_home(), resolve_database(db, password_file),
                                    mn_url=mn_url, artefacts=artefacts)
    ctx.stall_seconds = stall_seconds
    return ctx


def _recorded_artefacts(params: dict, image=None, installer=None, tool=None) -> Artefacts:
    """The artefacts a run recorded, with any new copy given in their place."""
    a = params["artefacts"]
    arts = Artefacts(*(Path(a[k]) if a.get(k) else None for k in ("image", "installer",
                                                                 "tool")), a.get("repo_url"))
    for kind, path in (("image", image), ("installer", installer), ("tool", tool)):
        if path is not None:
            setattr(arts, kind, path.absolute())
    return arts


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # a SIGTERM stops the run like Ctrl+C: journalled, reported


def _drive(work, json: bool) -> None:
    """Run an upgrade procedure with progress; on failure, say first whether VM HA is held."""
    bus, progress = _bus(json)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if progress:
            with progress:
                _, report = work(bus)
            info(f"[green]upgrade finished[/]; report: {report}")
        else:
            work(bus)
    except (SkyliftError, KeyboardInterrupt):
        st = single_mn.status(skylift_home())
        if st and st["vm_ha_held_off"] and not json:
            info(f"[yellow]note[/]: {st['vm_ha_message']}")
        if st and st["report"] and not json:
            info(f"report of the stopped run: {st['report']}")
        raise


def _artefacts(offline: bool, incremental: bool, image, installer, tool, repo_url) -> Artefacts:
    if offline == incremental:
        raise UsageError("choose one of --offline and --incremental",
                         next="--offline --image F --installer F --tool F, or "
                              "--incremental --repo-url URL")
    if offline and not (image and installer and tool):
        raise UsageError("an offline upgrade needs the OS image, the installer and the tool",
                         next="pass --image, --installer and --tool")
    if incremental and not repo_url:
        raise UsageError("an incremental upgrade needs the online repository",
                         next="pass --repo-url URL")
    return Artefacts(image, installer, tool, repo_url)


def _bus(json: bool) -> tuple[EventBus, RichProgress | None]:
    bus = EventBus()
    if json:
        bus.subscribe(JsonLinesSink(sys.stdout))
        return bus, None
    progress = RichProgress(console)
    bus.subscribe(progress)
    return bus, progress


@app.command()
def check(db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
          mn_url: str = MN_URL_OPTION, image: Path = typer.Option(None, "--image"),
          installer: Path = typer.Option(None, "--installer"),
          tool: Path = typer.Option(None, "--tool"), ha_suite: Path = HA_SUITE_OPTION,
          ssh_password_file: Path = SSH_PASSWORD_OPTION, json: bool = JSON_OPTION) -> None:
    """Run every preflight check; exit 2 if anything blocks the upgrade (changes nothing)."""
    ctx = _context(db, password_file, mn_url, Artefacts(image, installer, tool))
    multi = _multi(skylift_home())
    if multi:
        _ha_inputs(ctx, ha_suite, ssh_password_file)
    try:
        report = run_checks(multi_mn.checks() if multi else ALL_CHECKS, ctx)
    finally:
        ctx.close()
    if json:
        emit_json(report.to_dict())
    else:
        plain(report.render())
    raise typer.Exit(report.exit_code)


@app.command()
def plan(incremental: bool = typer.Option(False, "--incremental", help="Plan an upgrade "
                                          "from the online repository."),
         db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
         json: bool = JSON_OPTION) -> None:
    """Print the phases and steps the upgrade would run, with estimates (changes nothing)."""
    the_plan = (multi_mn.build_plan() if _multi(skylift_home())
                else single_mn.build_plan(incremental))
    ctx = _context(db, password_file, None) if token_path(skylift_home()).exists() else None
    try:
        if json:
            emit_json(the_plan.to_dict(ctx))
        else:
            plain(the_plan.render(ctx))
            if ctx is None:
                info(f"no estimates: no cloud is configured in {skylift_home()} (set "
                     "SKYLIFT_HOME to the MN's state folder)")
    finally:
        if ctx is not None:
            ctx.close()


@app.command()
def run(
    offline: bool = typer.Option(False, "--offline", help="Use the OS image, installer and "
                                 "tool given as files."),
    incremental: bool = typer.Option(False, "--incremental", help="Fetch them from the "
                                     "online repository."),
    image: Path = typer.Option(None, "--image", help="OS image for the hosts' OS release."),
    installer: Path = typer.Option(None, "--installer", help="Installer bundle."),
    tool: Path = typer.Option(None, "--tool", help="Upgrade tool (.pyz)."),
    repo_url: str = typer.Option(None, "--repo-url", help="Online repository URL."),
    ha_suite: Path = HA_SUITE_OPTION, ssh_password_file: Path = SSH_PASSWORD_OPTION,
    db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
    mn_url: str = MN_URL_OPTION, dry_run: bool = typer.Option(False, "--dry-run",
                                                             help="Print the plan only."),
    stall_timeout: float = STALL_OPTION, json: bool = JSON_OPTION,
) -> None:
    """Upgrade the whole cloud to the newest release, proving afterwards that nothing was lost."""
    arts = _artefacts(offline, incremental, image, installer, tool, repo_url)
    multi = _multi(skylift_home())
    if multi and incremental:
        raise UsageError("an HA cloud is upgraded from files, not from the online repository",
                         why="every MN is given the same verified artefacts",
                         next="--offline --image F --installer F --tool F --ha-suite F")
    if multi and ha_suite is None:
        raise UsageError("an HA cloud of several MNs needs the new release's HA suite",
                         next="pass --ha-suite skylift-ha-<release>.tar")
    if ha_suite is not None and not multi:
        raise UsageError("--ha-suite is for an HA cloud of several MNs; this MN is alone",
                         next="leave --ha-suite out")
    if dry_run:
        plan(incremental=incremental, db=db, password_file=password_file, json=json)
        return
    ctx = _context(db, password_file, mn_url, arts, stall_timeout)
    if multi:
        _ha_inputs(ctx, ha_suite, ssh_password_file)
    up_to_date = single_mn.already_at_target(ctx)
    if up_to_date:
        ctx.close()
        if json:
            emit_json({"upgraded": False, "release": ctx.target.version, "message": up_to_date})
        else:
            info(up_to_date)
        return
    if multi:
        _drive(lambda bus: multi_mn.run(ctx, events=bus), json)
        return
    _drive(lambda bus: single_mn.run(ctx, incremental=incremental, events=bus), json)


@app.command()
def resume(db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
           ssh_password_file: Path = SSH_PASSWORD_OPTION,
           image: Path = typer.Option(None, "--image", help="A new copy of the OS image (when "
                                      "the run stopped on the one it had)."),
           installer: Path = typer.Option(None, "--installer", help="A new copy of the "
                                          "installer bundle."),
           tool: Path = typer.Option(None, "--tool", help="A new copy of the upgrade tool."),
           stall_timeout: float = STALL_OPTION, json: bool = JSON_OPTION) -> None:
    """Continue an interrupted upgrade from where it stopped (same end state as one run)."""
    home = skylift_home()
    params = single_mn.last_params(home)
    if params is None:
        raise UsageError("there is no upgrade to resume", next="start one with "
                         "`skylift upgrade run`")
    st = single_mn.status(home)
    if st and st["status"] in ("ok", "refused", "rolled_back"):
        _nothing_to_resume(st, json)
        return
    if _procedure(home) is multi_mn:  # this MN's own MN and artefact copies, not the params'
        ctx = _ha_inputs(_context(db, password_file, None, _recorded_artefacts(
            params, image, installer, tool), stall_timeout), None, ssh_password_file)
        _drive(lambda bus: multi_mn.run(ctx, events=bus, resume=True), json)
        return
    ctx = _context(db, password_file, params["mn_url"],
                   _recorded_artefacts(params, image, installer, tool), stall_timeout)
    _drive(lambda bus: single_mn.run(ctx, incremental=params["incremental"], events=bus,
                                     resume=True), json)


@app.command()
def finish(accept_pending: bool = typer.Option(False, "--accept-pending", help="Finish "
                                               "without the resources still pending (named "
                                               "in the report)."),
           db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
           json: bool = JSON_OPTION) -> None:
    """Finish a run stopped in the agents' phase without the hosts that do not come back:
    the proof names them, VM HA goes back as it was, the MN upgrades each when it returns."""
    if not accept_pending:
        raise UsageError("finishing leaves the pending resources on their old agent until "
                         "they return", why="that is a choice only you can make",
                         next="look at them with `skylift upgrade status`, then pass "
                              "--accept-pending")
    home = skylift_home()
    params = single_mn.last_params(home)
    if params is None:
        raise Refused("there is no upgrade to finish", next="start one with "
                      "`skylift upgrade run`")
    if _procedure(home) is multi_mn:
        raise Refused("an HA cloud's upgrade is not finished without its pending resources",
                      why="`finish` is the single-MN procedure's; every MN of an HA cloud "
                          "keeps retrying the hosts it owns",
                      next="fix the pending resources (`skylift upgrade status`) and `skylift "
                           "upgrade resume` on the VIP holder")
    ctx = _context(db, password_file, params["mn_url"], _recorded_artefacts(params))
    _drive(lambda bus: single_mn.finish(ctx, incremental=params["incremental"], events=bus),
           json)


def _nothing_to_resume(st: dict, json: bool) -> None:
    """Resume after a run that ended: say how it ended; nothing changes (exit 0)."""
    said = {"ok": f"the upgrade to {st['target']} finished; the cloud is upgraded",
            "refused": "the last run was refused before it changed anything; start a new one "
                       "with `skylift upgrade run` once the cause is fixed",
            "rolled_back": "the last run was rolled back; start a new one with "
                           "`skylift upgrade run`"}[st["status"]]
    if json:
        emit_json({"resumed": False, "status": st["status"], "run_id": st["run_id"],
                   "message": said})
    else:
        info(f"nothing to resume: {said}")


@app.command()
def rollback(db: str = DB_OPTION, password_file: Path = PASSWORD_FILE_OPTION,
             ssh_password_file: Path = SSH_PASSWORD_OPTION, yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
             json: bool = JSON_OPTION) -> None:
    """Undo an upgrade that has not passed the point of no return (refused after it)."""
    params = single_mn.last_params(skylift_home())
    if params is None:
        raise UsageError("there is no upgrade to roll back", next="nothing to do")
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("rollback restores the database dump taken before the upgrade",
                             why="there is no terminal to confirm on", next="pass --yes")
        typer.confirm("Restore the database dump and the previous MN?", abort=True)
    bus, _ = _bus(json)
    if _procedure(skylift_home()) is multi_mn:
        ctx = _ha_inputs(_context(db, password_file, None, _recorded_artefacts(params)), None,
                         ssh_password_file)
        said = multi_mn.rollback(ctx, events=bus)
    else:
        ctx = _context(db, password_file, params["mn_url"], _recorded_artefacts(params))
        said = single_mn.rollback(ctx, incremental=params["incremental"], events=bus)
    if not json:
        info(f"[green]rolled back[/]: {'; '.join(said) or 'nothing had changed'}")


@app.command()
def status(json: bool = JSON_OPTION) -> None:
    """Where the last upgrade stands: done, failed (and why), or interrupted; every resource
    still pending, grouped by reason with its remedy; whether VM HA is held off."""
    home = skylift_home()
    st = single_mn.status(home)
    if st is not None and _procedure(home) is multi_mn:
        st.update(multi_mn.status_extra(home))
    if st is not None and st["pending"]:
        live = single_mn.still_pending(home)
        if live is not None:  # the MN's view now: who has converged since
            now = {i["uuid"]: i for i in live}
            st["pending_converged_since"] = len([i for i in st["pending"]
                                                 if i["uuid"] not in now])
            st["pending"] = [now[i["uuid"]] for i in st["pending"] if i["uuid"] in now]
    if json:
        emit_json(st)
        return
    if st is None:
        info("no upgrade has run here")
        return
    info(f"upgrade {st['run_id']} to {st['target']}: {st['status']}, "
         f"{st['steps_done']} of {st['steps']} steps done")
    if st["in_flight"]:
        info(f"  interrupted in {st['in_flight']}: run `skylift upgrade resume`")
    for key, error in st["failed"].items():
        plain(f"  failed at {key}: {error}")
    if st["vm_ha_held_off"]:
        info(f"  [yellow]{st['vm_ha_message']}[/]")
    if st.get("coordinator"):
        info(f"  coordinated by {st['coordinator']['member']} (pid {st['coordinator']['pid']})")
    for name, why in (st.get("behind") or {}).items():
        info(f"  [yellow]{name} is behind[/]: {why} — bring it back and run `skylift upgrade "
             "resume` on the VIP holder")
    _print_pending(st)
    if st["report"]:
        info(f"  report: {st['report']}")


def _print_pending(st: dict) -> None:
    pending = st["pending"]
    if st.get("pending_converged_since"):
        info(f"  {st['pending_converged_since']} pending resources have converged since")
    if not pending:
        return
    how = ("finished without them; the MN upgrades each when it returns"
           if st["pending_accepted"] else "not converged yet; the MN keeps retrying them")
    info(f"  {len(pending)} resources pending ({how}):")
    groups: dict[str, list[dict]] = {}
    for item in pending:
        groups.setdefault(item["reason"], []).append(item)
    for reason, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        plain(f"    {reason} ({len(items)}): {describe(reason).meaning}")
        plain(f"      remedy: {describe(reason).remedy}")
        for item in items:
            plain(f"      {item['kind']} {item['name']} {item.get('address', '')}")
