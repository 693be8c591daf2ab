"""The database's release against the target: no downgrade, a known release."""

from skylift.engine.checks import Issue, Severity, check
from skylift.errors import SkyliftError
from skylift.lineage import version_key
from skylift.upgrade.checks._lineage import current_release


@check("no-downgrade", "The target release is not older than the cloud",
       remedy="use the skylift of the cloud's release or newer; downgrades are not supported")
def no_downgrade(ctx):
    try:
        current = current_release(ctx)
    except SkyliftError as exc:
        return f"{exc.what}: {exc.why}"
    if current and version_key(current) > ctx.target.key:
        return f"the cloud is at {current}, newer than the target {ctx.target.version}"
    return None


@check("lineage", "The cloud is on the release lineage", severity=Severity.INFO)
def lineage(ctx):
    current = current_release(ctx)
    if current is None:
        return Issue("the database holds no cloud yet", severity=Severity.INHIBITOR,
                     remedy="point --db at the cloud's database")
    if current == ctx.target.version:
        return Issue(f"the cloud is already at {current}: the upgrade will only reconnect "
                     "agents that are behind and prove the cloud", remedy="")
    return Issue(f"the cloud goes from {current} to {ctx.target.version} in one run",
                 remedy="")
