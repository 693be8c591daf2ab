"""Protect the cloud before changing it: VM HA off, the cloud recorded, database and tool backed
up, and the migration rehearsed on a copy of the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pathlib import Path

from skylift.db.backup import dump
from skylift.db.inventory import digest_of, resource_keys
from skylift.db.rehearsal import MAX_ROWS, drop_scratch, keep_verified_copy, rehearse
from skylift.errors import OperationFailed, Refused
from skylift.files import copy_atomic, sha256
from skylift.mn.settings import HA_HELD_OFF_BY
from skylift.upgrade.steps import UpgradeStep
from skylift.upgrade.cloud_view import CloudView, read_cloud

if TYPE_CHECKING:
    from skylift.upgrade.run import UpgradeRun


class VmHaOff(UpgradeStep):
    id = "vm-ha-off"
    description = "turn VM HA off (reconnecting hosts can look down), remembering its value"
    undo_summary = "VM HA as it was before"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 0.5

    def is_done(self, run: UpgradeRun) -> bool:
        return "ha_previous" in run.state and run.mn.get_setting("ha", "enable") == "false"

    def run(self, run: UpgradeRun) -> None:
        if "ha_previous" not in run.state:  # a re-run must not remember its own 'false'
            run.state.set("ha_previous", run.mn.get_setting("ha", "enable"))
        run.mn.set_setting(*HA_HELD_OFF_BY, f"upgrade to {run.ctx.target.version}")
        run.mn.set_setting("ha", "enable", "false")

    def undo(self, run: UpgradeRun) -> None:
        release_vm_ha(run)


def release_vm_ha(run: UpgradeRun) -> None:
    """VM HA back to what it was, and the upgrade's hold on it lifted."""
    previous = run.state.get("ha_previous")
    if previous is not None:
        run.mn.set_setting("ha", "enable", previous)
    if run.mn.get_setting(*HA_HELD_OFF_BY):
        run.mn.set_setting(*HA_HELD_OFF_BY, "")


class RecordCloud(UpgradeStep):
    id = "record-cloud"
    description = "record the inventory digests, every VM's boot id and every agent's version"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 0.5 + nodes / 300  # reading every agent: ~300 nodes/s

    def is_done(self, run: UpgradeRun) -> bool:
        return "before" in run.state

    def run(self, run: UpgradeRun) -> None:
        with run.ctx.facts.engine.connect() as conn:
            keys = resource_keys(conn)
        digests = {kind: digest_of(k) for kind, k in keys.items()}
        save_record(run.run_dir / INVENTORY_FILE, keys)
        view = read_cloud(run.ctx.facts, events=run.events, trust=run.ctx.agent_trust)
        # beside the run state, not in it: the state is rewritten whole at every change, and
        # 10,000 VMs made each of those writes cost a JSON encoding of 2 MB
        save_record(run.run_dir / CLOUD_FILE, view.to_dict())
        assets = run.console_assets()
        run.state.set("before", {"digests": digests, "cloud_file": CLOUD_FILE,
                                 "console_assets": assets,
                                 "mn_release": run.mn.version().get("release")})


INVENTORY_FILE = "inventory-before.json.gz"  # every kind's keys, for the proof
CLOUD_FILE = "cloud-before.json.gz"  # every agent's version and VMs, for the proof


def save_record(path: Path, data) -> None:
    """Keep what a step recorded for the proof (gzip JSON, 0600, atomically)."""
    import gzip
    import json

    from skylift.files import write_atomic

    write_atomic(path, gzip.compress(json.dumps(data).encode(), mtime=0), mode=0o600)


def load_record(path: Path):
    """What save_record kept (None: not kept, e.g. a run recorded before it was)."""
    import gzip
    import json

    try:
        return json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, ValueError):
        return None


def recorded_cloud(run: UpgradeRun, before: dict) -> CloudView:
    """The cloud RecordCloud recorded (in the run state itself for a run of an older tool)."""
    data = before.get("cloud") or load_record(run.run_dir / before.get("cloud_file", CLOUD_FILE))
    if data is None:
        raise OperationFailed("the cloud recorded before the upgrade cannot be read",
                              why=f"{run.run_dir / CLOUD_FILE} is missing or damaged",
                              next="restore it from another MN's copy of the run folder, if "
                                   "any; otherwise check the cloud by hand: the proof cannot")
    return CloudView.from_dict(data)


# The dump whose verified copy BackupDatabase kept for RehearseMigration (None: no copy kept).
REHEARSAL_COPY = "rehearsal_copy_of"


class BackupDatabase(UpgradeStep):
    id = "backup-database"
    description = "dump the database into the backup folder and verify the dump by restoring it"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0 + rows / 10_000  # dump and verify: ~10,000 rows/s on MariaDB

    def is_done(self, run: UpgradeRun) -> bool:
        path = run.state.get("dump")
        return bool(path) and Path(path).exists()

    def run(self, run: UpgradeRun) -> None:
        ctx = run.ctx
        result = dump(ctx.db, run.backup_dir, "pre-upgrade")
        # One restore, two uses: the copy restored to verify the dump stays for the rehearsal.
        kept = keep_verified_copy(result.path, ctx.db)
        run.state.set(REHEARSAL_COPY, str(result.path) if kept else None)
        run.state.set("dump", str(result.path))

    def undo(self, run: UpgradeRun) -> None:
        """Drop the copy kept for the rehearsal, if one is left; the dump stays (a backup)."""
        drop_scratch(run.ctx.db)


class RehearseMigration(UpgradeStep):
    id = "rehearse-migration"
    description = ("rehearse the migration on a copy of the verified dump and time it "
                   "(nothing in the cloud changes)")
    changes_nothing = True

    def rough_seconds(self, rows: int, nodes: int) -> float:
        # the copy is the one the backup restored to verify the dump: only the migration
        return 0.5 if rows > MAX_ROWS else 1.0 + rows / 1e6

    def is_done(self, run: UpgradeRun) -> bool:
        done = run.state.get("rehearsal")
        return bool(done) and done.get("dump") == run.state.get("dump") and not done.get("error")

    def run(self, run: UpgradeRun) -> None:
        ctx, dump_file = run.ctx, run.state.get("dump")
        if not dump_file:
            raise Refused("there is no verified dump to rehearse the migration on",
                          why="the backup step recorded none",
                          next="roll back with `skylift upgrade rollback`, then run again")
        restored = run.state.get(REHEARSAL_COPY) == dump_file
        if restored:
            # From here on the copy may be half migrated: after a crash, restore it anew.
            run.state.set(REHEARSAL_COPY, None)
        result = rehearse(Path(dump_file), ctx.db, ctx.target.version, restored=restored)
        run.state.set("rehearsal", result.to_dict())
        if result.error:
            raise Refused(
                f"the migration to {ctx.target.version} failed on a copy of the database; "
                "the cloud's own database was not touched",
                why=result.error,
                next="if the cloud's data is the cause, fix it, run `skylift upgrade "
                     "rollback` and start the upgrade again (it takes a new dump); if the "
                     "database server is (space, rights), fix it and run `skylift upgrade "
                     "resume` to rehearse again")

    def undo(self, run: UpgradeRun) -> None:
        drop_scratch(run.ctx.db)


class BackupTool(UpgradeStep):
    id = "backup-tool"
    description = "copy the upgrade tool into the backup folder"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 0.1

    def _dest(self, run: UpgradeRun) -> Path | None:
        tool = run.ctx.artefacts.tool
        return run.backup_dir / tool.name if tool else None

    def is_done(self, run: UpgradeRun) -> bool:
        dest, tool = self._dest(run), run.ctx.artefacts.tool
        return dest is None or (dest.exists() and sha256(dest) == sha256(tool))

    def run(self, run: UpgradeRun) -> None:
        dest, tool = self._dest(run), run.ctx.artefacts.tool
        copy_atomic(tool, dest)
