"""Preflight: obtain and verify the artefacts, then run every check (nothing changes here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import shutil
from pathlib import Path

import httpx

from skylift.engine.checks import run_checks
from skylift.upgrade.steps import UpgradeStep
from skylift.errors import ArtefactError, Refused
from skylift.upgrade.checks import ALL as ALL_CHECKS
from skylift.upgrade.checks.versions import downgrade, wrong_target

if TYPE_CHECKING:
    from skylift.upgrade.run import UpgradeRun

SIDECARS = ("", ".md5", ".sha256", ".sig")


def artefact_names(release: str, os_release: str) -> dict[str, str]:
    return {"image": f"skylift-os-{release}-{os_release}.tar",
            "installer": f"skylift-installer-{release}.tar",
            "tool": f"skylift-upgrade-{release}.pyz"}


def fetched_paths(run_dir: Path, release: str, mn_os: str | None) -> dict[str, Path]:
    """Where an incremental upgrade keeps what it downloads (known before it downloads)."""
    names = artefact_names(release, _image_os(mn_os, release))
    return {kind: run_dir / "artefacts" / name for kind, name in names.items()}


class FetchArtefacts(UpgradeStep):
    id = "fetch-artefacts"
    description = "download the OS image, installer and tool from the online repository"
    changes_nothing = True

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 5.0

    def is_done(self, run: UpgradeRun) -> bool:
        arts = run.ctx.artefacts
        return all(p is not None and p.exists() for p in (arts.image, arts.installer, arts.tool))

    def run(self, run: UpgradeRun) -> None:
        arts = run.ctx.artefacts
        with httpx.Client(timeout=120.0) as client:
            for path in (arts.image, arts.installer, arts.tool):
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                for suffix in SIDECARS:
                    _download(client, f"{arts.repo_url.rstrip('/')}/{path.name}{suffix}",
                              path.with_name(path.name + suffix))


def _image_os(mn_os: str | None, release: str) -> str:
    from skylift.release.manifest import image_os_for

    return image_os_for(mn_os or "c74", release)


def _download(client: httpx.Client, url: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".part")
    try:
        with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise ArtefactError(f"cannot download {url}", why=f"HTTP {resp.status_code}",
                                    next="check --repo-url and that the release is published")
            with open(tmp, "wb") as out:
                for chunk in resp.iter_bytes(1 << 20):
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise ArtefactError(f"cannot download {url}", why=type(exc).__name__,
                            next="check the network and --repo-url, then resume") from None
    shutil.move(tmp, dest)


class VerifyArtefacts(UpgradeStep):
    id = "verify-artefacts"
    description = "verify sums and signatures of the OS image, installer and tool"
    changes_nothing = True

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0

    def run(self, run: UpgradeRun) -> None:
        result = run.ctx.verified
        if isinstance(result, ArtefactError):
            raise result
        problem = downgrade(run.ctx) or wrong_target(run.ctx)
        if problem:
            raise Refused("the artefacts do not upgrade this cloud", why=problem,
                          next=f"bring the artefacts of {run.ctx.target.version}, then run "
                               "again")


class Checks(UpgradeStep):
    id = "checks"
    description = "run every preflight check; an inhibitor stops the upgrade here"
    changes_nothing = True

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0

    def checks(self) -> list:
        """The checks this procedure runs."""
        return ALL_CHECKS

    def run(self, run: UpgradeRun) -> None:
        report = run_checks(self.checks(), run.ctx, events=run.events)
        run.state.set("checks", report.to_dict())
        if report.inhibitors:
            raise Refused("the preflight checks found what blocks the upgrade",
                          why="; ".join(f.summary for f in report.inhibitors),
                          next="fix it (see `skylift upgrade check`), then run again")
