"""Post-checks: prove the upgrade lost nothing, then put VM HA back as it was."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skylift.db.backup import running_management_nodes
from skylift.db.inventory import digest_of, resource_keys
from skylift.mn.settings import HA_HELD_OFF_BY
from skylift.processes import listening_pids
from skylift.upgrade.steps import UpgradeStep
from skylift.errors import OperationFailed
from skylift.upgrade.cloud_view import read_settled
from skylift.upgrade.proof import prove
from skylift.upgrade.steps.protect import (INVENTORY_FILE, load_record, recorded_cloud,
                                           release_vm_ha)
from skylift.upgrade.steps.reconnect import ACCEPTED

if TYPE_CHECKING:
    from skylift.upgrade.run import UpgradeRun

# how long an agent the MN is still upgrading may take to answer on the new version before the
# proof lists it (a restart takes seconds; a broken agent is reported after this wait)
SETTLE_SECONDS = 60.0


class Prove(UpgradeStep):
    id = "prove"
    description = ("compare inventory, VM boot ids and agent versions with the recorded "
                   "cloud; fresh console assets; exactly one MN serving")

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 0.5 + nodes / 300

    def is_done(self, run: UpgradeRun) -> bool:
        proof = run.state.get("proof")
        return bool(proof and proof.get("ok"))

    def run(self, run: UpgradeRun) -> None:
        before = run.state.get("before")
        with run.ctx.facts.engine.connect() as conn:
            keys = resource_keys(conn)
        digests = {kind: digest_of(k) for kind, k in keys.items()}
        pending = {i["uuid"]: f"{i['kind']} {i['name']}"
                   for i in run.state.get(ACCEPTED) or []}
        after = read_settled(run.ctx.facts, run.ctx.target.version, timeout=SETTLE_SECONDS,
                             trust=run.ctx.agent_trust,
                             events=run.events, skip=set(pending))
        proof = prove(before["digests"], digests, recorded_cloud(run, before), after,
                      run.ctx.target.version, pending, code_digest=_package_code(run),
                      before_keys=load_record(run.run_dir / INVENTORY_FILE), after_keys=keys)
        old_assets, new_assets = before.get("console_assets"), run.console_assets()
        if old_assets is not None and new_assets is not None:
            proof.console_assets_renamed = old_assets != new_assets
            proof.console_must_change = before.get("mn_release") != run.ctx.target.version
        proof.mn_listeners = sorted(listening_pids(run.mn.port, run.mn.host))
        proof.live_heartbeats = running_management_nodes(run.ctx.db)
        proof.expected_mns = self.expected_mns(run)
        run.state.set("proof", proof.to_dict())
        if not proof.ok:
            raise OperationFailed("the proof after the upgrade failed",
                                  why="; ".join(proof.failures()),
                                  next="investigate the listed resources; the database dump "
                                       "taken before the upgrade is kept")


    def expected_mns(self, run: UpgradeRun) -> int:
        """How many MNs serve the cloud once it is upgraded."""
        return 1


def _package_code(run: UpgradeRun) -> str | None:
    """The code digest of the target's skylift-agent package in the MN's repository."""
    from skylift.mn.agent_upgrade import AGENT, RepoCatalog

    catalog = RepoCatalog(run.ctx.node_root)
    index = catalog.index(run.ctx.mn_os)
    pkg = index.find(AGENT, run.ctx.target.version) if index else None
    return getattr(pkg, "code_digest", None) if pkg else None


class VmHaRestore(UpgradeStep):
    id = "vm-ha-restore"
    description = "set VM HA back to the value it had before the upgrade"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 0.5

    def is_done(self, run: UpgradeRun) -> bool:
        previous = run.state.get("ha_previous")
        return ((previous is None or run.mn.get_setting("ha", "enable") == previous)
                and not run.mn.get_setting(*HA_HELD_OFF_BY))

    def run(self, run: UpgradeRun) -> None:
        release_vm_ha(run)
