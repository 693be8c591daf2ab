"""`install(spec)`: look (read only), check, then do each part; the record last.

A refusal (usage, or an inhibitor of the preflight) changes nothing and leaves nothing
behind. Every part is idempotent, so an install killed half-way completes when run again
(install.pending.json says which database that install was creating); a machine whose record
names the installer's release is already installed and nothing is changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from skylift.config import load_config
from skylift.db.engine import Database
from skylift.engine.checks import CheckReport, run_checks
from skylift.errors import ArtefactError, OperationFailed, Refused, SkyliftError
from skylift.install import checks, database, machine, record, service
from skylift.install.spec import InstallContext, InstallSpec, state_home
from skylift.install.usage import check_usage, key_specs
from skylift.mn.auth import ensure_token, token_path
from skylift.pki.authority import CA_CERT, CloudCa, pki_dir
from skylift.release.verify import verify_artefacts
from skylift.repo.update import update_from_image
from skylift.units import systemd_running
from skylift.upgrade import slots

Progress = Callable[[str], None]


class InstallRefused(Refused):
    """The preflight found what blocks the install; nothing was changed. `report` has all."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        blocking = report.inhibitors
        super().__init__("the install is refused: " + "; ".join(f.summary for f in blocking),
                         why="nothing was changed",
                         next="; ".join(f.remedy for f in blocking if f.remedy))

    def to_dict(self) -> dict:
        return super().to_dict() | {"checks": self.report.to_dict()}


def _look(spec: InstallSpec, home: Path) -> InstallContext:
    """What the checks and parts need, read without changing anything."""
    have_config = load_config(home) if (home / "config.toml").exists() else None
    given = [k if k.startswith("ed25519:") else str(Path(k).absolute())
             for k in spec.trusted_keys]
    keys = key_specs(given + (have_config.trusted_keys if have_config else []), home)
    ctx = InstallContext(spec, home, keys, record=record.read_record(home))
    try:
        if not keys:
            raise ArtefactError("no trusted release keys are given",
                                why="an artefact is accepted only when signed by a key this "
                                    "installation trusts",
                                next="give the release's public key with --trusted-key FILE")
        ctx.verified = verify_artefacts([spec.installer, spec.image], keys)
        ctx.release = ctx.verified.release
        if ctx.installer_artefact is not None:
            ctx.installer_manifest = ctx.installer_artefact.manifest
    except ArtefactError as exc:
        ctx.verified = exc
    if spec.os_release:
        ctx.machine_os, ctx.machine_os_detected = spec.os_release, spec.os_release
    else:
        ctx.machine_os, ctx.machine_os_detected = machine.detect_os_release()
    url = spec.db_url or f"sqlite:///{home / 'skylift.db'}"
    ctx.db = Database.from_string(url, spec.db_password)
    ctx.systemd = systemd_running() if spec.systemd is None else spec.systemd
    if home.exists():
        ctx.own_mn_pid = machine.own_mn(home, spec.port)
    if ctx.release is not None:
        pending = record.read_pending(home) or {}
        resuming = (pending.get("release") == ctx.release and pending.get("creating_db")
                    and pending.get("db") == ctx.db.display())
        try:
            ctx.db_state = database.inspect(ctx.db, ctx.release, resuming=bool(resuming))
        except SkyliftError as exc:
            ctx.db_state = exc
    return ctx


def _command(ctx: InstallContext) -> service.MnCommand:
    spec = ctx.spec
    return service.MnCommand(ctx.home, ctx.db.url_without_password(), spec.listen, spec.port,
                             ctx.node_root, spec.tls,
                             Path(spec.db_password_file).absolute()
                             if spec.db_password_file else None)


def _plan(ctx: InstallContext, cmd: service.MnCommand) -> list[str]:
    st = ctx.db_state
    units = ctx.units_dir / f"{service.UNIT_NAME}.service"
    start = ("not started (--no-start)" if not ctx.spec.start else
             "already running: kept" if ctx.own_mn_pid else
             "systemctl daemon-reload; systemctl enable --now skylift-mn" if ctx.systemd else
             "started detached (no systemd here), waiting until it answers")
    return [
        f"unpack the {ctx.release} MN software into {_slot(ctx.home, ctx.release)}"
        " and point mn/slots/current at it",
        f"the cloud's CA in {pki_dir(ctx.home)} ("
        + ("kept" if (pki_dir(ctx.home) / CA_CERT).is_file() else "created") + ")",
        f"the admin token in {token_path(ctx.home)} (0600; "
        + ("kept" if token_path(ctx.home).exists() else "created") + ")",
        f"the database {st.display}: " + ("created at " + ctx.release if st.action == "create"
                                           else f"kept (already at {st.release})"),
        f"the local repository of {ctx.machine_os} in {ctx.node_root} from "
        f"{ctx.spec.image.name}",
        f"config.toml in {ctx.home} (0600): db_url {st.display}, mn_url {cmd.url}",
        f"the unit {units}, verified with systemd-analyze",
        f"the MN on {ctx.spec.listen}:{ctx.spec.port}: {start}",
        f"the record {ctx.home / record.RECORD}",
    ]


def install(spec: InstallSpec, progress: Progress | None = None) -> dict:
    """Install the MN of spec.installer's release on this machine; returns the summary.

    Raises UsageError (a mistake in spec), InstallRefused (preflight: `.report`), or another
    SkyliftError when a part fails (run again to complete: every part is idempotent)."""
    say = progress or (lambda message: None)
    check_usage(spec)
    home = state_home(spec)
    existed = home.exists()
    try:
        say("verifying the installer and the OS image")
        ctx = _look(spec, home)
        if ctx.record and ctx.release and ctx.record.get("release") == ctx.release:
            return _already(ctx)
        report = run_checks(checks.ALL, ctx, skip=spec.skip_checks)
        if report.inhibitors:
            raise InstallRefused(report)
        cmd = _command(ctx)
        if spec.dry_run:
            return {"dry_run": True, "release": ctx.release, "home": str(home),
                    "plan": _plan(ctx, cmd), "checks": report.to_dict(),
                    "unit": cmd.unit().text()}
    finally:
        # the state folder an error message's config path made on the way: not left behind
        if not existed and home.is_dir() and not any(home.iterdir()):
            home.rmdir()
    return _do(ctx, cmd, report, say)


def _do(ctx: InstallContext, cmd: service.MnCommand, report: CheckReport,
        say: Progress) -> dict:
    spec, home, release = ctx.spec, ctx.home, ctx.release
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / "mn").mkdir(exist_ok=True, mode=0o700)
    st = ctx.db_state
    record.write_pending(home, {"release": release, "db": st.display,
                                "creating_db": st.action == "create"})
    changed: list[str] = []
    say(f"installing the {release} MN software")
    if not slots.installed(home, release):
        slots.install(home, spec.installer, release)
        changed.append("software")
    if slots.current(home) != release:
        slots.switch(home, release)
        changed.append("current slot")
    ca_existed = (pki_dir(home) / CA_CERT).is_file()
    CloudCa.ensure(pki_dir(home))
    token = token_path(home)
    token_existed = token.exists()
    ensure_token(token)
    changed += [] if ca_existed else ["CA"]
    changed += [] if token_existed else ["admin token"]
    if _write_node_json(ctx):
        changed.append("node.json")
    say(f"preparing the database {st.display}")
    db_done = database.prepare(ctx.db, st, release, spec.agent_port)
    agent_port = database.set_agent_port(ctx.db, None)
    changed += ["database"] if db_done == "created" else []
    say(f"filling the local repository from {spec.image.name}")
    repo = update_from_image(spec.image, ctx.node_root, os_release=ctx.machine_os,
                             trusted_keys=ctx.keys)
    changed += ["repository"] if repo.changed else []
    if record.write_config(home, {"db_url": ctx.db.url_without_password(), "mn_url": cmd.url,
                                  "node_root": str(ctx.node_root), "trusted_keys": ctx.keys}):
        changed.append("config.toml")
    unit_path, written = service.write_unit(cmd, ctx.units_dir)
    changed += ["unit"] if written else []
    problems = _verify(unit_path)
    started = _start(ctx, cmd, say)
    summary = {
        "already_installed": False, "release": release, "home": str(home), "mn_url": cmd.url,
        "database": {"url": st.display, "dialect": ctx.db.dialect, "action": db_done},
        "agent_port": agent_port, "token_file": str(token),
        "ca": {"file": str(pki_dir(home) / CA_CERT), "action":
               "kept" if ca_existed else "created"},
        "repository": {"os": ctx.machine_os, "release": repo.repo.release,
                       "version": repo.repo.repo_version, "changed": repo.changed},
        "units": [{"file": str(unit_path), "verified": problems is not None,
                   "problems": problems or []}],
        "slot": str(_slot(home, release)), "config": str(home / "config.toml"),
        "started": started, "systemd": ctx.systemd,
        "versions": ctx.installer_manifest.get("components", {}),
        "warnings": [f.to_dict() for f in report.warnings],
    }
    record.write_record(home, {k: summary[k] for k in (
        "release", "mn_url", "database", "agent_port", "token_file", "units", "slot",
        "versions", "repository")} | {"os_release": ctx.machine_os, "listen": spec.listen,
                                      "port": spec.port, "tls": spec.tls,
                                      "mn_command": cmd.to_dict()})
    changed.append("record")
    summary["changed"] = changed
    summary["record"] = str(home / record.RECORD)
    return summary


def _slot(home: Path, release: str) -> Path:
    """Where upgrade.slots puts a release (its slot_path creates folders: not in a dry run)."""
    return home / "mn" / "slots" / release


def _write_node_json(ctx: InstallContext) -> bool:
    path = ctx.node_root / "node.json"
    data = {"role": "management-node", "os": ctx.machine_os, "os_release": ctx.machine_os}
    try:
        if json.loads(path.read_text()) == data:
            return False
    except (OSError, ValueError):
        pass
    from skylift.files import write_json

    ctx.node_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_json(path, data)
    return True


def _verify(unit_path: Path) -> list[str] | None:
    """systemd-analyze's findings ([] = verified); None when it is not installed."""
    import shutil

    if shutil.which("systemd-analyze") is None:
        return None
    problems = service.verify_unit(unit_path)
    if problems:
        raise OperationFailed(f"the unit {unit_path} does not pass systemd-analyze verify",
                              why="; ".join(problems)[:800],
                              next="report this; the install stopped before starting the MN")
    return []


def _start(ctx: InstallContext, cmd: service.MnCommand, say: Progress) -> dict | None:
    if not ctx.spec.start:
        return None
    if ctx.own_mn_pid is not None and not ctx.systemd:
        return {"how": "already running", "pid": ctx.own_mn_pid}
    say(f"starting the management node on {ctx.spec.listen}:{ctx.spec.port}")
    if ctx.systemd:
        return service.start_with_systemd(cmd, ctx.spec.start_timeout)
    return service.start_detached(cmd, ctx.spec.db_password, ctx.spec.start_timeout)


def _already(ctx: InstallContext) -> dict:
    """The summary of a machine where this release is installed: nothing changed."""
    from skylift.mn.launch import wait_ready

    rec = ctx.record
    answers = None
    try:
        answers = wait_ready(rec["mn_url"], timeout=2.0, home=ctx.home).get("release")
    except SkyliftError:
        pass
    return rec | {"already_installed": True, "changed": [], "home": str(ctx.home),
                  "record": str(ctx.home / record.RECORD), "mn_answers": answers is not None,
                  "mn_release": answers, "started": None}
