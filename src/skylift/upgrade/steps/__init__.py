"""The steps of the upgrade procedures, one module per area; each says what it does, how to
tell it is done, and how to undo it."""

from skylift.engine.plan import Step
from skylift.upgrade import estimates


class UpgradeStep(Step):
    """A step of an upgrade: its estimate comes from the size of the cloud."""

    def estimate_seconds(self, run) -> float | None:
        ctx = getattr(run, "ctx", run)  # an UpgradeRun while running, a context for a plan
        return estimates.seconds(self.id, ctx.facts, getattr(run, "state", None))
