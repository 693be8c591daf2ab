"""Wait for every host, storage and vRouter to reconnect with its agent upgraded."""

from __future__ import annotations

from typing import TYPE_CHECKING

import time

from skylift.engine.events import Progress
from skylift.upgrade.steps import UpgradeStep
from skylift.errors import OperationFailed

if TYPE_CHECKING:
    from skylift.upgrade.run import UpgradeRun


class ReconnectAgents(UpgradeStep):
    id = "reconnect-agents"
    description = "wait until every agent is Connected and on the new version"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 2.0 + nodes / 80  # agent rollout over SSH: ~80 nodes/s

    def _counts(self, run: UpgradeRun) -> tuple[int, int, list[str]]:
        facts, version = run.ctx.facts, run.ctx.target.version
        total = facts.scalar("SELECT COUNT(*) FROM hosts") + facts.scalar(
            "SELECT COUNT(*) FROM vpc_vrouters")
        behind = [f"host {n} ({s}, {v})" for n, s, v in facts.rows(
            "SELECT name, status, agent_version FROM hosts WHERE status <> 'Connected' "
            "OR agent_version <> :v ORDER BY name", v=version)]
        behind += [f"vRouter {n} ({s}, {v})" for n, s, v in facts.rows(
            "SELECT name, status, agent_version FROM vpc_vrouters WHERE status <> 'Connected' "
            "OR agent_version <> :v ORDER BY name", v=version)]
        return total, total - len(behind), behind

    def is_done(self, run: UpgradeRun) -> bool:
        total, ready, _ = self._counts(run)
        return ready == total

    def run(self, run: UpgradeRun) -> None:
        total, ready, behind = self._counts(run)
        deadline = time.monotonic() + 120 + 0.02 * total
        while ready < total:
            run.events.emit(Progress("agents reconnected and upgraded", ready, total, 0))
            if time.monotonic() > deadline:
                raise OperationFailed(
                    f"{total - ready} of {total} agents did not reconnect on the new version",
                    why="; ".join(behind[:5]),
                    next="fix those nodes (their agent or network), then `skylift upgrade "
                         "resume`")
            time.sleep(0.5)
            total, ready, behind = self._counts(run)
        run.events.emit(Progress("agents reconnected and upgraded", ready, total, 0))
