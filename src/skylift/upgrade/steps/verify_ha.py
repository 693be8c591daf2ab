"""The proof of a multi-MN upgrade: the single-MN proof (inventory, boot ids, every agent,
console assets), with every MN's heartbeat alive, and the HA cloud whole again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skylift.errors import OperationFailed
from skylift.mn.https import client_verify
from skylift.upgrade.mn_control import launch_of
from skylift.upgrade.steps import UpgradeStep
from skylift.upgrade.steps.verify_cloud import Prove

if TYPE_CHECKING:
    from skylift.upgrade.ha_run import HaUpgradeRun


class ProveCloud(Prove):
    """Prove, where every member's MN heartbeats and this MN's port has one listener."""

    def expected_mns(self, run: HaUpgradeRun) -> int:
        return len(run.members.cfg.members)

    def run(self, run: HaUpgradeRun) -> None:
        try:  # this MN listens as it was started (0.0.0.0 on an HA MN): look there
            run.mn.adopt_launch(launch_of(int(run.mn.version()["pid"])))
        except (OperationFailed, KeyError, ValueError):
            pass
        super().run(run)


class ProveHaCluster(UpgradeStep):
    id = "prove-ha-cluster"
    description = ("one Galera cluster, every member Synced; the VIP on an MN in normal mode; "
                   "every MN on the new release; the hosts shared out among them")

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0

    def is_done(self, run: HaUpgradeRun) -> bool:
        got = run.state.get("ha_proof")
        return bool(got and got.get("ok"))

    def run(self, run: HaUpgradeRun) -> None:
        from skylift.ha.status import cluster_status

        cfg = run.members.cfg
        view = cluster_status(cfg, run.ctx.mn_token, client_verify(cfg.vip_url, run.ctx.home))
        target = run.ctx.target.version
        wrong = list(view["findings"])
        for mn in view["mns"]:
            if mn["answers"] and (mn["release"] != target or mn["mode"] != "normal"):
                wrong.append(f"{mn['name']} runs {mn['release']} in {mn['mode']} mode, not "
                             f"{target} in normal mode")
        owned = [mn.get("hosts_owned") for mn in view["mns"]]
        hosts = run.ctx.facts.counts.get("hosts", 0)
        if hosts and not sum(o or 0 for o in owned):
            wrong.append(f"no MN owns any of the {hosts} hosts: they are not shared out")
        proof = {"ok": not wrong, "failures": wrong, "vip_holder": view["vip_holder"],
                 "mns": {mn["name"]: {"release": mn["release"], "mode": mn["mode"],
                                      "hosts_owned": mn.get("hosts_owned"),
                                      "galera": (mn.get("galera") or {}).get(
                                          "local_state_comment")}
                         for mn in view["mns"]}}
        run.state.set("ha_proof", proof)
        if wrong:
            raise OperationFailed("the HA cloud is not whole after the upgrade",
                                  why="; ".join(wrong),
                                  next="`skylift ha status` shows each MN; fix the cause and "
                                       "`skylift upgrade resume`")
