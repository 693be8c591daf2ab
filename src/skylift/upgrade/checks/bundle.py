"""The artefacts the operator brought are complete, intact and genuine (R-PREP)."""

from skylift.engine.checks import Issue, Severity, check
from skylift.errors import ArtefactError
from skylift.release.verify import verify_artefacts


@check("artefacts-verified", "The OS image, installer bundle and upgrade tool are verified",
       remedy="download the named artefact again (with its .md5, .sha256 and .sig files)")
def artefacts_verified(ctx):
    paths = ctx.artefacts.paths
    if not paths:
        return Issue("no artefacts given yet (they are fetched and verified when the upgrade "
                     "runs)", severity=Severity.INFO, remedy="")
    try:
        verify_artefacts(paths, ctx.trusted_keys, need="offline", release=ctx.target.version,
                         os=ctx.mn_os)
    except ArtefactError as exc:
        return [Issue(line) for line in (exc.what, exc.why) if line]
    return None
