"""Rough durations of the upgrade's steps for the dry-run plan, from the cloud's size.

Each step says how long it takes for a cloud of a given size (`rough_seconds`, from this
project's own measurements on a 2-core machine, docs/benchmarks.md), and may say what was
measured on this very cloud (`measured_seconds`, e.g. the migration rehearsed on a copy of the
database), which beats the rough figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from skylift.upgrade.facts import CloudFacts
from skylift.upgrade.run_state import RunState

if TYPE_CHECKING:
    from skylift.upgrade.steps import UpgradeStep


def size(facts: CloudFacts) -> tuple[int, int]:
    """The cloud's size as the estimates read it: rows in the database, agent nodes."""
    counts = facts.counts
    return sum(counts.values()), counts.get("hosts", 0) + counts.get("virtual_routers", 0)


def seconds(step: UpgradeStep, facts: CloudFacts, state: RunState | Mapping | None = None
            ) -> float | None:
    """The estimate of one step for this cloud; None when the cloud cannot be read."""
    measured = step.measured_seconds(state) if state is not None else None
    if measured is not None:
        return measured
    try:
        rows, nodes = size(facts)
    except Exception:  # noqa: BLE001 - a plan without estimates is still a plan
        return None
    rough = step.rough_seconds(rows, nodes)
    return None if rough is None else round(rough, 1)
