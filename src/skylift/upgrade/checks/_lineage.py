"""Where the cloud stands in the lineage, for checks that apply only across some release."""

from __future__ import annotations

from skylift.lineage import release, version_key


def current_release(ctx) -> str | None:
    """The release of the cloud's database (read once per check run)."""
    return ctx.facts.release


def crosses(ctx, version: str) -> bool:
    """True when the upgrade goes from before `version` to `version` or later."""
    current = current_release(ctx)
    if current is None:
        return False
    return version_key(current) < release(version).key <= ctx.target.key
