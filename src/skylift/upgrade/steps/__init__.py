"""The steps of the upgrade procedures, one module per area; each says what it does, how to
tell it is done, how to undo it, and how long it takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skylift.engine.plan import Step
from skylift.upgrade import estimates


class UpgradeStep(Step):
    """A step of an upgrade: its estimate comes from the size of the cloud, or from what was
    measured on it."""

    def rough_seconds(self, rows: int, nodes: int) -> float | None:
        """How long the step takes on a cloud of `rows` database rows and `nodes` agents."""
        return None

    def measured_seconds(self, state: Mapping) -> float | None:
        """How long it will take, from what this run measured (its state); None if nothing."""
        return None

    def estimate_seconds(self, run: Any) -> float | None:
        ctx = getattr(run, "ctx", run)  # an UpgradeRun while running, a context for a plan
        return estimates.seconds(self, ctx.facts, getattr(run, "state", None))
