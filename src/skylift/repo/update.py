"""`skylift repo update`: verify an OS image, then install it as the node's repo atomically.

Stages: verify the image (signature, digests, manifest) → unpack into a staging folder beside
the store, fsync'ing every file and folder, re-hashing the image as it streams by and checking
each package against the index → rename the staging folder into the store → switch state.json
(current = new, previous = old) in one rename → point a retired OS release at its successor →
remove what is neither current nor previous. A kill at any point leaves the old repo current
and whole; a re-run cleans up and completes.

Refused before anything changes: an image of an older release than the current repo's (a
downgrade; `allow_downgrade` to mean it — the upgrade's own rollback switches back with
LocalRepo.rollback and never comes here), and any member that is not a plain file with a
relative name (checked by verify, and again here as it is unpacked: the signature is not
enough).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skylift.config import load_config
from skylift.errors import ArtefactError, Refused
from skylift.files import fsync_dir, replace, sync, write_synced
from skylift.lineage import release as lineage_release, version_key
from skylift.release import manifest as mf
from skylift.release.archive import unsafe_tar_member
from skylift.release.verify import VerifiedArtefact, verify_artefacts
from skylift.repo.local import REPO_INFO, STAGING_PREFIX, STORE, LocalRepo, RepoInfo

CHUNK = 1024 * 1024

# Called with the name of each point an update passes: "verified", "file-staged" (after each
# file), "staged", "stored", "switched" (a test pauses there to kill the process at it).
StageHook = Callable[[str], None]


def _no_hook(stage: str) -> None:
    pass


@dataclass(frozen=True)
class UpdateResult:
    """The repo after an update, and whether anything changed."""

    changed: bool
    repo: RepoInfo
    previous_version: str | None
    redirected_from: str | None

    def to_dict(self) -> dict:
        return {"changed": self.changed, "repo": self.repo.to_dict(),
                "previous_version": self.previous_version,
                "redirected_from": self.redirected_from}


class _HashingReader:
    """A file wrapper that hashes what is read, so unpacking re-checks the verified digest."""

    def __init__(self, fh) -> None:
        self.fh, self.sha = fh, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        return data


def image_for_node(art: VerifiedArtefact, node_os: str) -> str:
    """The OS release whose repo this image refreshes; refused if it is the wrong image."""
    want = mf.image_os_for(node_os, art.release)
    if art.os != want:
        rel = lineage_release(art.release)
        why = (f"{node_os} is retired since 3.7.1: its repo is the {want} one"
               if node_os in rel.retired_os else f"this node's repo is for {node_os}")
        raise ArtefactError(
            f"{art.path.name} is the {art.os} OS image; this node needs the {want} one",
            why=why, next=f"give {mf.artefact_name(mf.OS_IMAGE, art.release, want)}")
    return want


def _unsafe(art: VerifiedArtefact, name: str, why: str) -> ArtefactError:
    return ArtefactError(f"{art.path.name}: refused to unpack the member {name!r}: {why}",
                         why="a member must be a plain file inside the folder it is unpacked "
                             "in, signed or not",
                         next="do not use this image: get it again from the official source")


def _stage(art: VerifiedArtefact, staging: Path, on_stage: StageHook) -> None:
    """Unpack the image into staging, durably, checking it against what was verified.

    Each member is checked again as it comes (whatever verify said): a plain file, a relative
    name without `..`, accepted by tarfile's data filter, landing inside staging, listed in
    the manifest, and only once.
    """
    allowed = set(art.manifest["files"]) | {mf.MANIFEST_NAME}
    written: dict[str, str] = {}
    dirs = {staging}
    root = os.path.realpath(staging)
    with open(art.path, "rb") as raw:
        reader = _HashingReader(raw)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                why = unsafe_tar_member(member, staging)
                if why:
                    raise _unsafe(art, member.name, why)
                target = staging / member.name
                if os.path.commonpath([root, os.path.realpath(target)]) != root:
                    raise _unsafe(art, member.name, "it would land outside the staging folder")
                if member.name in written:
                    raise _unsafe(art, member.name, "it comes twice")
                if member.name not in allowed or not member.isfile():
                    raise ArtefactError(f"{art.path.name}: unexpected member {member.name!r}",
                                        next="download the OS image again")
                target.parent.mkdir(parents=True, exist_ok=True)
                dirs.add(target.parent)
                sha = hashlib.sha256()
                src = tar.extractfile(member)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "wb") as out:
                    while chunk := src.read(CHUNK):
                        sha.update(chunk)
                        out.write(chunk)
                    sync(out)
                written[member.name] = sha.hexdigest()
                on_stage("file-staged")
        while reader.read(CHUNK):  # the tar's end padding belongs to the digest too
            pass
    if reader.sha.hexdigest() != art.sha256:
        raise ArtefactError(f"{art.path.name} changed while it was being installed",
                            why="its digest no longer matches the verified one",
                            next="make sure nothing writes the image, then run the update again")
    # `index` is optional in the manifest (its default is repodata/index.json); the index
    # itself is not: it is the repo's metadata (release, versions, roles), never guessed.
    index_name = mf.OSImageManifest.model_validate(art.manifest).index
    if index_name not in written:
        raise ArtefactError(f"{art.path.name}: it holds no repository index ({index_name})",
                            why="the index says which packages the repo serves",
                            next="download the OS image again")
    try:
        index = mf.RepoIndex.model_validate_json((staging / index_name).read_text())
    except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
        raise ArtefactError(f"{art.path.name}: its repository index {index_name} cannot be read",
                            why=str(exc).splitlines()[0], next="download the OS image again"
                            ) from None
    for pkg in index.packages:
        if written.get(f"packages/{pkg.file}") != pkg.sha256:
            raise ArtefactError(f"{art.path.name}: package {pkg.file} does not match the index",
                                next="download the OS image again")
    info = {"release": art.release, "os": art.os, "repo_version": index.repo_version,
            "image": art.path.name, "image_sha256": art.sha256, "installed_at": time.time()}
    write_synced(staging / REPO_INFO, (json.dumps(info, indent=2) + "\n").encode(), 0o644)
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(d)


def _redirect(repo: LocalRepo, node_os: str, target_os: str) -> None:
    """Make repo/<node_os> a symlink to repo/<target_os> (a retired OS release)."""
    link = repo.repo_dir / node_os
    if link.is_symlink() and os.readlink(link) == target_os:
        return
    tmp = repo.repo_dir / f".{node_os}.link.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target_os)
    if link.is_dir() and not link.is_symlink():
        # The retired OS's own repo (from before 3.7.1) is kept aside, not deleted.
        link.rename(repo.repo_dir / f".retired-{node_os}-{int(time.time())}")
    replace(tmp, link)


def _refuse_downgrade(art: VerifiedArtefact, current: RepoInfo) -> None:
    """Refused: the image is of an older release than the repo it would replace."""
    if current.release is None or version_key(art.release) >= version_key(current.release):
        return
    raise Refused(
        f"{art.path.name} is {art.release}: installing it would downgrade the local "
        f"{current.serves} repo from {current.release} to {art.release}; nothing was changed",
        why="hosts install their packages from this repo, and an older image brings back "
            "older packages",
        next="to go back to the repo this one replaced, run `skylift repo rollback`; to "
             "install the older image anyway, run the update again with --allow-downgrade")


def update_from_image(image: Path | str, node_root: Path | str | None = None, *,
                      os_release: str | None = None,
                      trusted_keys: list[str] | dict | None = None,
                      on_stage: StageHook | None = None,
                      allow_downgrade: bool = False) -> UpdateResult:
    """Verify an OS image and make it the node's current repo (the old one kept for rollback).

    os_release: the node's OS release (default: node.json, else the OS of the node's only
    repo, else the image's own). A repo for a second OS release is added only when asked.
    trusted_keys: default config.toml's trusted_keys. on_stage: called at each point the
    update passes (see StageHook). Raises ArtefactError / Refused before anything changes
    when the image is damaged, unsigned, unsafe to unpack, for another OS release, or of an
    older release than the current repo (unless allow_downgrade).
    """
    on_stage = on_stage or _no_hook
    image = Path(image)
    keys = trusted_keys if trusted_keys is not None else load_config().trusted_keys
    art = verify_artefacts([image], keys).artefacts[0]
    if art.kind != mf.OS_IMAGE:
        raise ArtefactError(f"{image.name} is {mf.DESCRIPTION[art.kind]}, not an OS image",
                            next="give the OS image (skylift-os-<release>-<os>.tar)")
    repo = LocalRepo(node_root)
    node_os = repo.known_os(os_release) or art.os
    target = image_for_node(art, node_os)
    on_stage("verified")
    entry_id = f"{art.release}-{art.sha256[:16]}"
    base = repo.repo_dir / target
    base.mkdir(parents=True, exist_ok=True)
    with repo.lock(target):
        state = repo.read_state(target)
        before = repo.info(target)
        changed = state["current"] != entry_id
        if changed and not allow_downgrade:
            _refuse_downgrade(art, before)
        repo.collect_garbage(target)  # leftovers of a killed run
        if changed:
            store = base / STORE
            store.mkdir(exist_ok=True)
            if not (store / entry_id).is_dir():  # a rename puts only complete entries there
                staging = base / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
                staging.mkdir()
                try:
                    _stage(art, staging, on_stage)
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
                on_stage("staged")
                os.rename(staging, store / entry_id)
                fsync_dir(store)
                on_stage("stored")
            repo.write_state(target, {"current": entry_id,
                                      "previous": state["current"] or state["previous"]})
            on_stage("switched")
        if node_os != target:
            _redirect(repo, node_os, target)
        repo.collect_garbage(target)
    return UpdateResult(changed, repo.info(target),
                        before.repo_version if changed else before.previous,
                        node_os if node_os != target else None)


def check_repo_matches(installer_manifest: dict | VerifiedArtefact,
                       node_root: Path | str | None = None, os_release: str | None = None
                       ) -> RepoInfo:
    """Refuse unless the node's local repo is the version the installer bundle expects."""
    manifest = (installer_manifest.manifest if isinstance(installer_manifest, VerifiedArtefact)
                else dict(installer_manifest))
    repo = LocalRepo(node_root)
    node_os = repo.default_os(os_release)
    want = manifest.get("retired_os", {}).get(node_os, node_os)
    release, expected = manifest["release"], manifest["repo_version"]
    if want not in manifest["os_releases"]:
        raise Refused(f"the installer of {release} has no repo for {node_os} hosts",
                      why=f"it supports {', '.join(manifest['os_releases'])}",
                      next="this case needs an OS upgrade of the hosts first")
    info = repo.info(want)
    if info.repo_version != expected:
        image = mf.artefact_name(mf.OS_IMAGE, release, want)
        raise Refused(
            f"the local {want} repo is at {info.repo_version or 'nothing'}; the installer of "
            f"{release} needs {expected}",
            why="hosts install their packages from the local repo",
            next=f"refresh the local repo from the OS image first: "
                 f"skylift repo update --image {image}")
    return info
