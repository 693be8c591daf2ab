"""The artefacts the operator brought are complete, intact and genuine."""

from skylift.engine.checks import Issue, Severity, check
from skylift.errors import ArtefactError
from skylift.release.verify import VerificationFailed


@check("artefacts-verified", "The OS image, installer bundle and upgrade tool are verified",
       remedy="download the named artefact again (with its .md5, .sha256 and .sig files)")
def artefacts_verified(ctx):
    result = ctx.verified
    if result is None:
        return Issue("no artefacts given yet (they are fetched and verified when the upgrade "
                     "runs)", severity=Severity.INFO, remedy="")
    if isinstance(result, VerificationFailed):  # one finding per file, with its own remedy
        return [Issue(f"{f.file}: {f.problem}", remedy=f.remedy) for f in result.failures]
    if isinstance(result, ArtefactError):
        return Issue(result.what, remedy=result.next or "")
    return None
