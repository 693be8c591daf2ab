"""What each artefact is: its kind, its file name, and the manifest it carries inside.

Every artefact holds a MANIFEST.json at its root. The signed statement beside it (the .sig
file, see signature.py) repeats kind, release and OS release, so a verifier knows what a file
claims to be before opening it and can check the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from skylift.lineage import release as lineage_release

MANIFEST_NAME = "MANIFEST.json"
FORMAT = 1

OS_IMAGE = "os-image"
INSTALLER = "installer"
TOOL = "upgrade-tool"
HA_SUITE = "ha-suite"
KINDS = (OS_IMAGE, INSTALLER, TOOL, HA_SUITE)

DESCRIPTION = {
    OS_IMAGE: "the OS image",
    INSTALLER: "the installer bundle",
    TOOL: "the upgrade tool",
    HA_SUITE: "the multi-MN HA suite",
}

# Which artefacts each upgrade needs (SPEC §5): offline single MN, and multi MN.
NEEDS = {
    "offline": (OS_IMAGE, INSTALLER, TOOL),
    "multi-mn": (OS_IMAGE, INSTALLER, TOOL, HA_SUITE),
}


def artefact_name(kind: str, version: str, os: str | None = None) -> str:
    """The file name of an artefact of a release."""
    if kind == OS_IMAGE:
        return f"skylift-os-{version}-{os}.tar"
    if kind == INSTALLER:
        return f"skylift-installer-{version}.tar"
    if kind == TOOL:
        return f"skylift-upgrade-{version}.pyz"
    if kind == HA_SUITE:
        return f"skylift-ha-{version}.tar"
    raise ValueError(kind)


def kind_of_name(name: str, version: str) -> str | None:
    """The kind an artefact file name stands for in a release (None if it is none of them)."""
    if name.startswith(f"skylift-os-{version}-") and name.endswith(".tar"):
        return OS_IMAGE
    for kind in (INSTALLER, TOOL, HA_SUITE):
        if name == artefact_name(kind, version):
            return kind
    return None


def image_os_for(node_os: str, version: str) -> str:
    """The OS release whose image fills a node's repo: a retired OS (c72) uses its successor's."""
    return lineage_release(version).retired_os.get(node_os, node_os)


@dataclass(frozen=True)
class ArtefactFile:
    """One artefact file: what it is, and its size and digests."""

    path: Path
    kind: str
    release: str
    os: str | None
    size: int
    md5: str
    sha256: str


class _Manifest(BaseModel):
    # Unknown keys are allowed so a newer builder's manifest still reads; required ones are not.
    model_config = ConfigDict(extra="allow")

    format: int = FORMAT
    kind: str
    release: str
    code_version: str  # the skylift code the artefact was built from (see docs/release.md)
    files: list[str] = Field(min_length=1)


class PackageEntry(BaseModel):
    """One package of an OS image's repository index."""

    name: str
    version: str
    file: str
    sha256: str
    size: int
    role: str = ""  # e.g. "new-install" / "upgraded-hosts" for the two QEMUs of 4.3.12
    # skylift-agent: the code digest (skylift.agent.code) its agent reports once installed
    code_digest: str | None = None


class RepoIndex(BaseModel):
    """repodata/index.json: the repository metadata of one OS image."""

    model_config = ConfigDict(extra="allow")

    release: str
    os: str
    repo_version: str
    packages: list[PackageEntry] = Field(min_length=1)

    def find(self, name: str, version: str | None = None) -> PackageEntry | None:
        """A package by file name, or by package name (newest version unless one is given)."""
        for pkg in self.packages:
            if pkg.file == name:
                return pkg
        from skylift.lineage import version_key

        matches = [p for p in self.packages if p.name == name
                   and (version is None or p.version == version)]
        return max(matches, key=lambda p: version_key(p.version)) if matches else None


class OSImageManifest(_Manifest):
    kind: Literal["os-image"]
    os: str
    repo_version: str
    index: str = "repodata/index.json"


class InstallerManifest(_Manifest):
    kind: Literal["installer"]
    revision: str  # the database revision head of the release
    components: dict[str, str]
    upgrades_from: list[str]
    repo_version: str  # the local repo version the installer needs on the node
    os_releases: list[str]
    retired_os: dict[str, str] = {}
    wheels: list[dict]


class ToolManifest(_Manifest):
    kind: Literal["upgrade-tool"]
    entry: str


class HASuiteManifest(_Manifest):
    kind: Literal["ha-suite"]
    components: dict[str, str]


MODELS: dict[str, type[_Manifest]] = {
    OS_IMAGE: OSImageManifest,
    INSTALLER: InstallerManifest,
    TOOL: ToolManifest,
    HA_SUITE: HASuiteManifest,
}


class Statement(BaseModel):
    """What a signature vouches for: the artefact's identity, size and digests."""

    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT
    name: str
    kind: str
    release: str
    os: str | None = None
    size: int
    md5: str
    sha256: str
