"""`skylift release build`: the four artefacts of a release, each with its sums and signature.

The code is always the running skylift (4.3.12); an older release's artefacts are built from it
with that release's descriptor from skylift.lineage (versions, revision, OS releases). That is
what the lab and the tests need: artefacts whose identity and contents follow the lineage.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import skylift
from skylift.errors import UsageError
from skylift.files import PUBLIC, digests, write_atomic
from skylift.lineage import RELEASES, release as lineage_release, version_key
from skylift.release import ha, manifest as mf
from skylift.release.agent_code import code_digest_of_package
from skylift.release.archive import manifest_bytes, write_tar
from skylift.release.keys import key_id, load_private_key
from skylift.release.packages import AGENT_PACKAGE, host_packages, payload
from skylift.release.signature import sig_path, sign_statement
from skylift.release.wheel import build_wheel, build_zipapp, package_files, wheel_name


BuiltArtefact = mf.ArtefactFile  # one artefact written by a build


@dataclass(frozen=True)
class BuildResult:
    release: str
    key_id: str
    artefacts: list[BuiltArtefact]


def _os_releases(version: str, wanted: list[str] | None) -> list[str]:
    rel = lineage_release(version)
    if not wanted:
        return list(rel.os_releases)
    unknown = [o for o in wanted if o not in rel.os_releases]
    if unknown:
        retired = [o for o in unknown if o in rel.retired_os]
        hint = (f"; {', '.join(retired)} is retired, its repo is the "
                f"{rel.retired_os[retired[0]]} one" if retired else "")
        raise UsageError(
            f"release {version} has no OS image for {', '.join(unknown)}",
            why=f"it ships images for {', '.join(rel.os_releases)}{hint}",
            next=f"use --os {','.join(rel.os_releases)}",
        )
    return list(dict.fromkeys(wanted))


def os_image_content(version: str, os_release: str) -> tuple[dict, list[tuple[str, bytes]]]:
    """(manifest, files) of the OS image of a release for one host OS release."""
    files, entries = [], []
    for pkg in host_packages(version, os_release):
        data = payload(pkg)
        files.append((f"packages/{pkg.file}", data))
        entries.append(mf.PackageEntry(name=pkg.name, version=pkg.version, file=pkg.file,
                                       sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                       role=pkg.role, code_digest=(
                                           code_digest_of_package(data)
                                           if pkg.name == AGENT_PACKAGE else None)))
    index = mf.RepoIndex(release=version, os=os_release, repo_version=version, packages=entries)
    files.insert(0, ("repodata/index.json", manifest_bytes(index.model_dump(exclude_none=True))))
    manifest = mf.OSImageManifest(kind=mf.OS_IMAGE, release=version, os=os_release,
                                  repo_version=version, code_version=skylift.__version__,
                                  files=[name for name, _ in files])
    return manifest.model_dump(), files


def installer_content(version: str) -> tuple[dict, list[tuple[str, bytes]]]:
    """(manifest, files) of the installer bundle of a release."""
    rel = lineage_release(version)
    wheel = build_wheel()
    files = [(f"wheels/{wheel_name()}", wheel)]
    components = {"management-node": version, "agents": version, "tools": version,
                  "web-console": version}
    for os_release, pkgs in rel.packages.items():
        components[f"qemu/{os_release}"] = pkgs.qemu
        components[f"libvirt/{os_release}"] = pkgs.libvirt
    manifest = mf.InstallerManifest(
        kind=mf.INSTALLER, release=version, code_version=skylift.__version__,
        files=[name for name, _ in files], revision=rel.revision, components=components,
        upgrades_from=[r.version for r in RELEASES if version_key(r.version) < rel.key],
        repo_version=version, os_releases=list(rel.os_releases), retired_os=dict(rel.retired_os),
        wheels=[{"file": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in files],
    )
    return manifest.model_dump(), files


def tool_content(version: str) -> bytes:
    """The bytes of the upgrade tool (a zipapp carrying its own MANIFEST.json)."""
    names = ["__main__.py"] + [name for name, _ in package_files()]
    manifest = mf.ToolManifest(kind=mf.TOOL, release=version, code_version=skylift.__version__,
                               files=names, entry="__main__.py")
    return build_zipapp(version, manifest_bytes(manifest.model_dump()))


def ha_content(version: str) -> tuple[dict, list[tuple[str, bytes]]]:
    """(manifest, files) of the multi-MN HA suite."""
    files = ha.suite_files(version)
    manifest = mf.HASuiteManifest(kind=mf.HA_SUITE, release=version,
                                  code_version=skylift.__version__,
                                  files=[name for name, _ in files],
                                  components=ha.COMPONENTS | {"skylift-ha": version})
    return manifest.model_dump(), files


def seal_artefact(path: Path, kind: str, version: str, os_release: str | None,
                  key) -> BuiltArtefact:
    """Write the .md5, .sha256 and .sig files of an artefact (one pass for both digests)."""
    d = digests(path)
    write_atomic(path.with_name(path.name + ".md5"), f"{d.md5}  {path.name}\n".encode(),
                 mode=PUBLIC)
    write_atomic(path.with_name(path.name + ".sha256"), f"{d.sha256}  {path.name}\n".encode(),
                 mode=PUBLIC)
    statement = mf.Statement(name=path.name, kind=kind, release=version, os=os_release,
                             size=d.size, md5=d.md5, sha256=d.sha256)
    write_atomic(sig_path(path), sign_statement(statement, key), mode=PUBLIC)
    return BuiltArtefact(path, kind, version, os_release, d.size, d.md5, d.sha256)


def build_release(version: str, out_dir: Path, *, os_releases: list[str] | None = None,
                  key_path: Path | None = None) -> BuildResult:
    """Build, sum and sign every artefact of a release into out_dir."""
    lineage_release(version)  # an unknown release is refused before anything is written
    oses = _os_releases(version, os_releases)
    key = load_private_key(key_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for os_release in oses:
        path = out / mf.artefact_name(mf.OS_IMAGE, version, os_release)
        manifest, files = os_image_content(version, os_release)
        write_tar(path, manifest, files)
        built.append(seal_artefact(path, mf.OS_IMAGE, version, os_release, key))
    path = out / mf.artefact_name(mf.INSTALLER, version)
    write_tar(path, *installer_content(version))
    built.append(seal_artefact(path, mf.INSTALLER, version, None, key))
    path = out / mf.artefact_name(mf.TOOL, version)
    write_atomic(path, tool_content(version), mode=0o755)
    path.chmod(0o755)  # executable whatever the umask
    built.append(seal_artefact(path, mf.TOOL, version, None, key))
    path = out / mf.artefact_name(mf.HA_SUITE, version)
    write_tar(path, *ha_content(version))
    built.append(seal_artefact(path, mf.HA_SUITE, version, None, key))
    return BuildResult(version, key_id(key.public_key()), built)
