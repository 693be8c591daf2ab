"""Release artefacts for a lab upgrade: signed by a lab key that the MN machine trusts.

In the field the operator brings the artefacts of the new release; in the lab they are built
from this code (see docs/release.md) and signed with a key made for the lab.
"""

from __future__ import annotations

from pathlib import Path

from skylift.lab import mn_machine
from skylift.lineage import NEWEST
from skylift.release.build import build_release
from skylift.release.keys import PRIVATE_NAME, PUBLIC_NAME, generate_keypair
from skylift.upgrade.context import Artefacts


def _lab_key(mn_home: Path) -> Path:
    """The lab's release key (made once); the MN machine trusts its public half."""
    keys = mn_home / "keys"
    if not (keys / PRIVATE_NAME).exists():
        generate_keypair(keys)
    mn_machine.trust_key(mn_home, keys / PUBLIC_NAME)
    return keys / PRIVATE_NAME


def install_release_repo(mn_home: Path, node_root: Path, release: str, os_release: str) -> None:
    """Give the MN the local repository its release had (as its installer would have)."""
    from skylift.repo.update import update_from_image

    if release not in {r for r in _releases_with(os_release)}:
        return  # that release shipped no image for this OS (a retired OS release)
    arts = build_for_upgrade(mn_home, release=release, os_release=os_release)
    update_from_image(arts.image, node_root, os_release=os_release,
                      trusted_keys=[str(mn_home / "keys" / PUBLIC_NAME)])


def _releases_with(os_release: str) -> list[str]:
    from skylift.lineage import RELEASES

    return [r.version for r in RELEASES if os_release in r.os_releases]


def build_for_upgrade(mn_home: Path, *, release: str = NEWEST.version,
                      os_release: str = "c74") -> Artefacts:
    """Build (once) and sign the artefacts of `release`; the MN machine trusts the key."""
    key = _lab_key(mn_home)
    out = mn_home / "artefacts" / release
    image = out / f"skylift-os-{release}-{os_release}.tar"
    if not image.exists():
        build_release(release, out, os_releases=[os_release], key_path=key)
    return Artefacts(image=image, installer=out / f"skylift-installer-{release}.tar",
                     tool=out / f"skylift-upgrade-{release}.pyz")
