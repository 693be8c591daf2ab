"""The cloud's release against where the artefacts would take it: no downgrade, the tool's own
target, a known release."""

from skylift.engine.checks import Issue, Severity, check
from skylift.errors import SkyliftError
from skylift.lineage import version_key
from skylift.upgrade.checks._lineage import current_release


def downgrade(ctx) -> str | None:
    """Why this upgrade would take the cloud to an older release, or None."""
    current = current_release(ctx)
    if not current:
        return None
    to = ctx.artefacts_release or ctx.target.version
    if version_key(current) <= version_key(to):
        return None
    source = "the artefacts are" if ctx.artefacts_release else "this upgrade tool is"
    return (f"a downgrade: {source} of {to} and the cloud is at {current}; skylift never "
            "takes a cloud to an older release")


def wrong_target(ctx) -> str | None:
    """Why the (verified) artefacts are not the release this tool installs, or None."""
    have = ctx.artefacts_release
    if have is None or have == ctx.target.version or downgrade(ctx):
        return None
    return (f"the artefacts are of {have}, and this upgrade tool installs "
            f"{ctx.target.version}")


@check("no-downgrade", "The target release is not older than the cloud",
       remedy="bring the artefacts of the newest release (or of the cloud's own); "
              "downgrades are not supported")
def no_downgrade(ctx):
    try:
        return downgrade(ctx)
    except SkyliftError as exc:
        return f"{exc.what}: {exc.why}"


@check("target-release", "The artefacts are of the release this tool installs",
       remedy="bring the artefacts of the tool's release (skylift release verify names "
              "them), or use the upgrade tool that came with these artefacts")
def target_release(ctx):
    return wrong_target(ctx)


@check("lineage", "The cloud is on the release lineage", severity=Severity.INFO)
def lineage(ctx):
    current = current_release(ctx)
    if current is None:
        return Issue("the database holds no cloud yet", severity=Severity.INHIBITOR,
                     remedy="point --db at the cloud's database")
    if downgrade(ctx) or wrong_target(ctx):
        return None  # said by no-downgrade or target-release, as an inhibitor
    if current == ctx.target.version:
        return Issue(f"the cloud is already at {current}: there is nothing to upgrade",
                     remedy="")
    return Issue(f"the cloud goes from {current} to {ctx.target.version} in one run",
                 remedy="")
