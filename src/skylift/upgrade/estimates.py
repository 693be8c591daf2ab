"""Rough durations of the upgrade's steps for the dry-run plan, from the cloud's size.

The rates are this project's own measurements (docs/benchmarks.md) on a 2-core machine:
dump and verify about 10,000 rows/s on MariaDB, the migration about 1,000,000 rows/s, agent
rollout about 80 hosts/s over SSH, reading every agent about 300 hosts/s.

A time measured on this very cloud beats a rate: once the migration was rehearsed on a copy of
the database (step rehearse-migration, recorded in the run's state), its time is the estimate
of migrate-database, i.e. of the API's maintenance window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from skylift.db.rehearsal import MAX_ROWS
from skylift.upgrade.facts import CloudFacts
from skylift.upgrade.run_state import RunState


def _size(facts: CloudFacts) -> tuple[int, int]:
    counts = facts.counts
    return sum(counts.values()), counts.get("hosts", 0) + counts.get("virtual_routers", 0)


RULES: dict[str, Callable[[int, int], float]] = {
    "fetch-artefacts": lambda rows, nodes: 5.0,
    "verify-artefacts": lambda rows, nodes: 1.0,
    "checks": lambda rows, nodes: 1.0,
    "vm-ha-off": lambda rows, nodes: 0.5,
    "record-cloud": lambda rows, nodes: 0.5 + nodes / 300,
    "backup-database": lambda rows, nodes: 1.0 + rows / 10_000,
    # the copy is the one the backup restored to verify the dump: only the migration is left
    "rehearse-migration": lambda rows, nodes: 0.5 if rows > MAX_ROWS else 1.0 + rows / 1e6,
    "backup-tool": lambda rows, nodes: 0.1,
    "refresh-local-repo": lambda rows, nodes: 1.0,
    "install-software": lambda rows, nodes: 0.5,
    "drain-and-stop-mn": lambda rows, nodes: 3.0,
    "migrate-database": lambda rows, nodes: 1.0 + rows / 1_000_000,
    "start-new-mn": lambda rows, nodes: 5.0,
    "reconnect-agents": lambda rows, nodes: 2.0 + nodes / 80,
    "prove": lambda rows, nodes: 0.5 + nodes / 300,
    "vm-ha-restore": lambda rows, nodes: 0.5,
}


def seconds(step_id: str, facts: CloudFacts, state: RunState | Mapping | None = None
            ) -> float | None:
    """The estimate of one step for this cloud; None when the cloud cannot be read.

    state: what the run recorded (skylift.upgrade.run_state.RunState), whose measured times
    win over the rules.
    """
    measured = _measured(step_id, state)
    if measured is not None:
        return measured
    rule = RULES.get(step_id)
    if rule is None:
        return None
    try:
        rows, nodes = _size(facts)
    except Exception:  # noqa: BLE001 - a plan without estimates is still a plan
        return None
    return round(rule(rows, nodes), 1)


def _measured(step_id: str, state: RunState | Mapping | None) -> float | None:
    if step_id != "migrate-database" or state is None:
        return None
    rehearsal = state.get("rehearsal") or {}
    took = rehearsal.get("seconds")
    if took is None or rehearsal.get("error"):
        return None
    return max(round(took, 1), 0.1)
