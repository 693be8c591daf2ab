"""What the multi-MN upgrade does on one MN, on that MN's own machine (by its own identity).

The coordinator (skylift.upgrade.multi_mn, on the VIP holder) runs each of these on every MN
through `python -m skylift.upgrade.member OP` (skylift.upgrade.member): over SSH on a peer,
as a local process on its own machine. Each operation is idempotent and works only with what
this machine has: its state folder, its Galera member, its MN processes (found by pid + start
time, skylift.upgrade.mn_instances), its local repository and its keepalived. They reuse the
single-MN steps where the work is the same, on a run of this member (`member_run`) whose
remembered state lives in `$SKYLIFT_HOME/upgrade/member/`, apart from the coordinator's
journal (which is replicated into `upgrade/current/`).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from skylift import ha_record
from skylift.config import load_config
from skylift.db.backup import dump as dump_database, verify as verify_dump
from skylift.db.engine import Database
from skylift.engine.events import EventBus
from skylift.errors import OperationFailed, Refused
from skylift.ha import keepalived_service
from skylift.ha.keepalived import VipSpec, render
from skylift.ha.suite import install_suite, installed_suite, kept_artefact
from skylift.ha.keepalived_service import ha_folder
from skylift.lineage import release as release_of
from skylift.pki.authority import CA_CERT, pki_dir
from skylift.release.verify import verify_artefacts
from skylift.upgrade import slots
from skylift.upgrade.context import Artefacts, UpgradeContext
from skylift.upgrade.mn_control import launch_of
from skylift.upgrade.mn_instances import MnInstances
from skylift.upgrade.run import UpgradeRun
from skylift.upgrade.steps import management_node as mn_steps
from skylift.upgrade.steps import protect, repo

MEMBER_DIR = ("upgrade", "member")
INCOMING = ("upgrade", "incoming")


def member_dir(home: Path) -> Path:
    return Path(home).joinpath(*MEMBER_DIR)


def incoming_dir(home: Path, run_id: str) -> Path:
    """Where the coordinator puts this run's artefacts on the member (they are verified there)."""
    return Path(home).joinpath(*INCOMING, run_id)


@dataclass
class Order:
    """One operation as the coordinator asks it (read from stdin: the password is in it)."""

    run_id: str
    target: str
    db_password: str | None = None
    artefacts: dict | None = None  # kind -> file name in incoming_dir
    args: dict | None = None

    def artefact(self, home: Path, kind: str) -> Path | None:
        name = (self.artefacts or {}).get(kind)
        return incoming_dir(home, self.run_id) / name if name else None


def member_run(home: Path, order: Order, readonly: bool = False) -> UpgradeRun:
    """This MN's side of the run: its context (config, database, own MN URL) and its state.

    A run id other than the remembered one starts the member's state afresh (the old folder
    goes to upgrade/history); readonly (status): nothing is written."""
    home = Path(home)
    folder = member_dir(home)
    if readonly:
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="skylift-member-"))
    elif folder.exists():
        from skylift.upgrade.run_state import RunState

        if RunState(folder).get("run_id") not in (None, order.run_id):
            dest = home / "upgrade" / "history" / f"member-{time.strftime('%Y%m%dT%H%M%S')}"
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.move(str(folder), dest)
    cfg = load_config(home)
    db = Database.from_string(cfg.default_db_url(), order.db_password)
    arts = Artefacts(*(order.artefact(home, k) for k in ("image", "installer", "tool")))
    ctx = UpgradeContext.on_machine(home, db, artefacts=arts)
    ctx.target = release_of(order.target)
    run = UpgradeRun(ctx, folder, EventBus())
    if readonly:
        shutil.rmtree(folder, ignore_errors=True)
        return run
    run.state.set("run_id", order.run_id)
    if run.state.get("launch"):
        run.mn.adopt_launch(run.state.get("launch"))
    return run


# --- what this MN has -------------------------------------------------------------------------
def status(run: UpgradeRun, order: Order) -> dict:
    """What this MN runs and has installed (read only)."""
    from skylift.repo.local import LocalRepo

    try:
        version = run.mn.version()
    except OperationFailed as exc:
        version = {"error": exc.what}
    try:
        repo_release = LocalRepo(run.ctx.node_root).info(run.ctx.mn_os).release
    except (OSError, ValueError, KeyError, TypeError):
        repo_release = None
    suite = installed_suite(run.ctx.home)
    backups = run.backup_dir
    return {"release": version.get("release"), "mode": version.get("mode"),
            "serving": version.get("serving"), "pid": version.get("pid"),
            "error": version.get("error"), "slot": slots.current(run.ctx.home),
            "installed": slots.installed(run.ctx.home, order.target),
            "repo_release": repo_release, "ha_suite": suite.release if suite else None,
            "backup_free_bytes": shutil.disk_usage(_existing(backups)).free}


def _existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def verify(run: UpgradeRun, order: Order) -> dict:
    """Every artefact the coordinator put here, verified with this MN's own trusted keys."""
    paths = [p for p in run.ctx.artefacts.paths]
    suite = order.artefact(run.ctx.home, "ha_suite")
    if not paths:
        raise Refused("no artefacts were put on this MN for the run",
                      next="resume the upgrade from the VIP holder: it ships them first")
    got = verify_artefacts(paths + ([suite] if suite else []), run.ctx.trusted_keys,
                           release=order.target)
    return {"release": got.release, "files": [p.name for p in paths]
            + ([suite.name] if suite else [])}


# --- protect ----------------------------------------------------------------------------------
def dump(run: UpgradeRun, order: Order) -> dict:
    """A dump of this MN's Galera member, verified by restoring it into a scratch database
    (kept once made: a resume does not dump again)."""
    have = run.state.get("dump")
    if have and Path(have["path"]).exists():
        return have
    result = dump_database(run.ctx.db, run.backup_dir, "pre-upgrade")
    verify_dump(result.path, run.ctx.db)
    have = {"path": str(result.path), "sha256": result.manifest.dump_sha256,
            "bytes": result.manifest.dump_bytes}
    run.state.set("dump", have)
    return have


def _ensure(step, run: UpgradeRun):
    """A single-MN step's work on this MN, unless it is done here already."""
    if not step.is_done(run):
        step.run(run)
    return step


def backup_tool(run: UpgradeRun, order: Order) -> dict:
    return {"tool": str(_ensure(protect.BackupTool(), run)._dest(run))}


def refresh_repo(run: UpgradeRun, order: Order) -> dict:
    _ensure(repo.RefreshLocalRepo(), run)
    return {"repo": order.target}


def repo_back(run: UpgradeRun, order: Order) -> dict:
    repo.RefreshLocalRepo().undo(run)
    return {"repo": "previous"}


# --- the HA suite -----------------------------------------------------------------------------
def ha_suite(run: UpgradeRun, order: Order) -> dict:
    """The new HA suite installed, the HA record naming it, keepalived given the configuration
    rendered from its template (a reload: the VIP stays where it is)."""
    home = run.ctx.home
    before = installed_suite(home)
    if before is not None and "suite_before" not in run.state:
        run.state.set("suite_before", {"release": before.release, "sha256": before.sha256,
                                       "artefact": str(kept_artefact(before))})
    path = order.artefact(home, "ha_suite")
    if path is None:
        raise Refused("no HA suite was put on this MN for the run",
                      next="`skylift upgrade resume` on the VIP holder: it ships the "
                           "artefacts and the HA suite first")
    suite = install_suite(home, path, run.ctx.trusted_keys)
    return _apply_suite(run, suite)


def ha_suite_back(run: UpgradeRun, order: Order) -> dict:
    """The HA suite this MN had before the run, installed and applied again."""
    before = run.state.get("suite_before")
    if not before:
        return {"ha_suite": "unchanged"}
    suite = install_suite(run.ctx.home, Path(before["artefact"]), run.ctx.trusted_keys)
    return _apply_suite(run, suite)


def _apply_suite(run: UpgradeRun, suite) -> dict:
    home = run.ctx.home
    cfg = ha_record.load(home)
    me = _me(cfg)
    cfg = replace(cfg, ha_suite={"release": suite.release, "sha256": suite.sha256})
    cfg.save(home)
    python = cfg.check_python or sys.executable
    spec = VipSpec(vip=cfg.vip, mn_addresses=[m.address for m in cfg.members],
                   mn_port=cfg.mn_port, virtual_router_id=cfg.virtual_router_id,
                   python=python, ca=str(pki_dir(home) / CA_CERT), release=suite.release)
    how = keepalived_service.apply(ha_folder(home), render(spec, me.address, router_id=me.name,
                                                           template=suite.template))
    return {"ha_suite": suite.release, "keepalived": how}


def _me(cfg):
    from skylift.mn.https import machine_addresses

    mine = set(machine_addresses())
    me = next((m for m in cfg.members if m.address in mine), None) if cfg else None
    if me is None:
        raise Refused("this machine is none of the HA record's members",
                      next="run the member operations on the HA cloud's MNs")
    return me


# --- the MN software --------------------------------------------------------------------------
def install_software(run: UpgradeRun, order: Order) -> dict:
    _ensure(mn_steps.InstallSoftware(), run)
    return {"slot": order.target}


def _adopt_old(run: UpgradeRun, mns: MnInstances) -> None:
    """The MN serving here now recorded by identity, and how it was started adopted."""
    if mns.old() is not None:
        return
    pid = int(run.mn.version()["pid"])
    launch = launch_of(pid)
    run.state.set("launch", launch)
    run.mn.adopt_launch(launch)
    mns.record_old()


def to_maintenance(run: UpgradeRun, order: Order) -> dict:
    """The new software answers on this MN's port, the old MN drained and stopped.

    The new MN is started *before* the old one stops (the port is shared), and without
    --maintenance: the database is older than its code, so it comes up in maintenance on its
    own, and such an MN counts as serving for the VIP's health check — the VIP never loses
    the MN behind it. Then the old MN gets SIGTERM and drains (it stops accepting at once)."""
    mns = MnInstances(run)
    _adopt_old(run, mns)
    keep = mns.ready("maintenance") or mns.start("maintenance", maintenance=False,
                                                 slot=order.target)
    mns.keep_only(keep)
    return _serving(keep)


def to_new(run: UpgradeRun, order: Order) -> dict:
    """The new MN in normal mode on the migrated database, the maintenance one stopped."""
    mns = MnInstances(run)
    _adopt_old(run, mns)
    slots.switch(run.ctx.home, order.target)
    keep = mns.ready("new") or mns.start("new", maintenance=False, slot=order.target)
    if keep.mode != "normal" or keep.release != order.target:
        mns.stop(keep)
        raise OperationFailed(f"the new management node came up as {keep.release} in "
                              f"{keep.mode} mode", why=f"expected {order.target} in normal mode",
                              next="read the MN log under $SKYLIFT_HOME/mn, then resume")
    mns.keep_only(keep)
    return _serving(keep)


def to_old(run: UpgradeRun, order: Order) -> dict:
    """The MN of the previous software serving again (rollback), every other one stopped."""
    mns = MnInstances(run)
    old = mns.old()
    if old is None:
        return {"mn": "untouched"}
    keep = mns.ready("restored")
    if keep is None:
        slots.switch(run.ctx.home, old.slot)
        keep = mns.start("restored", maintenance=False, slot=old.slot)
    mns.keep_only(keep)
    return _serving(keep)


def stop_mns(run: UpgradeRun, order: Order) -> dict:
    """Every MN this run started or replaced here stopped (before a restore of the dump)."""
    mns = MnInstances(run)
    try:
        _adopt_old(run, mns)
    except OperationFailed:
        pass  # no MN answers here: there is only what the run recorded to stop
    mns.keep_only(None)
    return {"mn": "stopped"}


def _serving(inst) -> dict:
    return {"mn": inst.role, "pid": inst.proc.pid if inst.proc else None, "mode": inst.mode,
            "release": inst.release}


OPS = {"status": status, "verify": verify, "dump": dump, "backup-tool": backup_tool,
       "refresh-repo": refresh_repo, "repo-back": repo_back, "ha-suite": ha_suite,
       "ha-suite-back": ha_suite_back, "install-software": install_software,
       "to-maintenance": to_maintenance, "to-new": to_new, "to-old": to_old,
       "stop-mns": stop_mns}
