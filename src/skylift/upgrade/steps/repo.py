"""Refresh the MN's local repository from the OS image (the old `upgrade -r ISO` step)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from skylift.upgrade.steps import UpgradeStep
from skylift.repo.local import LocalRepo
from skylift.repo.update import check_repo_matches, update_from_image

if TYPE_CHECKING:
    from skylift.upgrade.run import UpgradeRun


class RefreshLocalRepo(UpgradeStep):
    id = "refresh-local-repo"
    description = "install the OS image into the local repository (atomic; old one kept)"
    undo_summary = "local repository switched back to the previous release"

    def rough_seconds(self, rows: int, nodes: int) -> float:
        return 1.0

    def is_done(self, run: UpgradeRun) -> bool:
        try:
            info = LocalRepo(run.ctx.node_root).info(run.ctx.mn_os)
        except (OSError, ValueError, KeyError, TypeError):
            return False  # no repository yet
        return info.release == run.ctx.target.version

    def run(self, run: UpgradeRun) -> None:
        ctx = run.ctx
        update_from_image(ctx.artefacts.image, ctx.node_root, os_release=ctx.mn_os,
                          trusted_keys=ctx.trusted_keys)
        run.state.set("repo_refreshed", True)
        check_repo_matches(_installer_manifest(ctx), ctx.node_root, os_release=ctx.mn_os)

    def undo(self, run: UpgradeRun) -> None:
        if run.state.get("repo_refreshed"):
            LocalRepo(run.ctx.node_root).rollback(run.ctx.mn_os)
            run.state.set("repo_refreshed", False)


def _installer_manifest(ctx) -> dict:
    import json
    import tarfile

    with tarfile.open(ctx.artefacts.installer) as tar:
        return json.loads(tar.extractfile("MANIFEST.json").read())
