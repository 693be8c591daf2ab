"""The HA suite on an MN: the signed artefact that carries the VIP's keepalived template and
the MN's health check, verified and unpacked into the MN's state folder.

    suite = install_suite(home, Path("skylift-ha-4.3.12.tar"), trusted_keys)
    suite = installed_suite(home)          # what apply renders keepalived.conf from
    render(spec, address, template=suite.template)

Every MN of an HA cloud installs the suite itself, checked against its own trusted keys
(config.toml), so no MN runs a configuration it did not verify. It goes to
$SKYLIFT_HOME/ha/suite/<release>/, and ha/suite/current.json names the one in force (its
release and SHA-256, the same on every MN of the cloud: the HA record holds it).
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from skylift.errors import ArtefactError
from skylift.files import write_atomic
from skylift.release import manifest as mf
from skylift.release.signature import sig_path
from skylift.release.verify import verify_artefacts

TEMPLATE = "keepalived/keepalived.conf.tmpl"


@dataclass(frozen=True)
class HaSuite:
    """An installed HA suite: its release, digest and the keepalived template it carries."""

    release: str
    sha256: str
    folder: Path

    @property
    def template(self) -> str:
        return (self.folder / TEMPLATE).read_text()

    def to_dict(self) -> dict:
        return {"release": self.release, "sha256": self.sha256, "folder": str(self.folder)}


def suite_root(home: Path) -> Path:
    return Path(home) / "ha" / "suite"


def install_suite(home: Path, path: Path, trusted_keys) -> HaSuite:
    """Verify the HA suite artefact (signature, digests, manifest; ArtefactError naming what
    is wrong, nothing written) and unpack it; it becomes the one in force."""
    verified = verify_artefacts([path], trusted_keys)
    art = verified.ha_suite
    if art is None:
        raise ArtefactError(f"{Path(path).name} is not an HA suite",
                            why=f"it is a {verified.artefacts[0].kind} artefact",
                            next="give the release's skylift-ha-<release>.tar")
    folder = suite_root(home) / art.release
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tarfile.open(art.path, "r:") as tar:   # members were checked safe by the verify
        for member in tar:
            if member.isfile() and member.name != mf.MANIFEST_NAME:
                target = folder / member.name
                target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                write_atomic(target, tar.extractfile(member).read(), mode=0o600)
    # the artefact itself, signed, beside what it holds: a joining MN is given it to verify
    kept = folder / "artefact"
    kept.mkdir(exist_ok=True, mode=0o700)
    for src in artefact_files(art.path):
        write_atomic(kept / src.name, src.read_bytes(), mode=0o644)
    if not (folder / TEMPLATE).is_file():
        raise ArtefactError(f"the HA suite {art.release} carries no {TEMPLATE}",
                            next="give an HA suite built by `skylift release build`")
    write_atomic(suite_root(home) / "current.json",
                 json.dumps({"release": art.release, "sha256": art.sha256}).encode(),
                 mode=0o600)
    return HaSuite(art.release, art.sha256, folder)


def artefact_files(path: Path) -> list[Path]:
    """The artefact and its signature and digest files."""
    path = Path(path)
    return [path, sig_path(path), path.with_name(path.name + ".sha256"),
            path.with_name(path.name + ".md5")]


def kept_artefact(suite: HaSuite) -> Path:
    """The signed artefact an installed suite came from (to hand to another MN)."""
    return suite.folder / "artefact" / mf.artefact_name(mf.HA_SUITE, suite.release)


def installed_suite(home: Path) -> HaSuite | None:
    """The HA suite in force on this MN, or None."""
    try:
        current = json.loads((suite_root(home) / "current.json").read_text())
    except (OSError, ValueError):
        return None
    folder = suite_root(home) / current["release"]
    return HaSuite(current["release"], current["sha256"], folder) \
        if (folder / TEMPLATE).is_file() else None
