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


def build_for_upgrade(mn_home: Path, *, release: str = NEWEST.version,
                      os_release: str = "c74") -> Artefacts:
    """Build (once) and sign the artefacts of `release`; the MN machine trusts the key."""
    keys = mn_home / "keys"
    if not (keys / PRIVATE_NAME).exists():
        generate_keypair(keys)
    mn_machine.trust_key(mn_home, keys / PUBLIC_NAME)
    out = mn_home / "artefacts" / release
    image = out / f"skylift-os-{release}-{os_release}.tar"
    if not image.exists():
        build_release(release, out, os_releases=[os_release], key_path=keys / PRIVATE_NAME)
    return Artefacts(image=image, installer=out / f"skylift-installer-{release}.tar",
                     tool=out / f"skylift-upgrade-{release}.pyz")
