"""Rough durations of the upgrade's steps for the dry-run plan, from the cloud's size.

The rates are this project's own measurements (docs/benchmarks.md) on a 2-core machine:
dump and verify about 10,000 rows/s on MariaDB, the migration about 1,000,000 rows/s, agent
rollout about 80 hosts/s over SSH, reading every agent about 300 hosts/s.
"""

from __future__ import annotations

from collections.abc import Callable

from skylift.upgrade.facts import CloudFacts


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


def seconds(step_id: str, facts: CloudFacts) -> float | None:
    """The estimate of one step for this cloud; None when the cloud cannot be read."""
    rule = RULES.get(step_id)
    if rule is None:
        return None
    try:
        rows, nodes = _size(facts)
    except Exception:  # noqa: BLE001 - a plan without estimates is still a plan
        return None
    return round(rule(rows, nodes), 1)
