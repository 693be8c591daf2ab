"""The layout and state of a node's local repository, one repository per host OS release.

    <node root>/node.json              {"os": "c72"}: the node's OS release (optional)
    <node root>/repo/<os>/state.json   {"current": id, "previous": id}: the one switch point
    <node root>/repo/<os>/store/<id>/  an installed OS image: REPO.json, repodata/, packages/
    <node root>/repo/<os>/.staging-*   an install in progress (removed on the next run)
    <node root>/repo/c72 -> c74        a retired OS release points at its successor's repo

Both pointers live in one small file replaced atomically, so an update or a rollback switches
current and previous in a single rename: there is no moment when either is half-written.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from skylift.config import skylift_home
from skylift.errors import Refused, UsageError
from skylift.files import write_json
from skylift.repo.fsutil import locked

STATE = "state.json"
REPO_INFO = "REPO.json"
STORE = "store"
STAGING_PREFIX = ".staging-"


def default_node_root() -> Path:
    """$SKYLIFT_HOME/node."""
    return skylift_home() / "node"


@dataclass(frozen=True)
class RepoInfo:
    """What a node's repository for one OS release holds."""

    os: str
    serves: str  # the OS release whose repo answers (differs for a retired OS)
    release: str | None
    repo_version: str | None
    image_sha256: str | None
    path: str | None
    previous: str | None  # repo version of the rollback target

    def to_dict(self) -> dict:
        return asdict(self)


class LocalRepo:
    """A node's local repository under its node root."""

    def __init__(self, node_root: Path | str | None = None) -> None:
        self.root = Path(node_root) if node_root else default_node_root()
        self.repo_dir = self.root / "repo"

    def node_os(self) -> str | None:
        """The node's OS release from node.json, if recorded."""
        try:
            return json.loads((self.root / "node.json").read_text()).get("os")
        except (FileNotFoundError, ValueError):
            return None

    def os_dir(self, os: str) -> Path:
        """The folder of an OS release's repo (a retired one's symlink resolves to its successor)."""
        path = self.repo_dir / os
        return path.resolve() if path.is_symlink() else path

    def lock(self, os: str):
        """The per-OS lock held while an update or rollback runs."""
        return locked(self.repo_dir / f".{os}.lock")

    def read_state(self, os: str) -> dict:
        try:
            return json.loads((self.os_dir(os) / STATE).read_text())
        except (FileNotFoundError, NotADirectoryError):
            return {"current": None, "previous": None}

    def write_state(self, os: str, state: dict) -> None:
        write_json(self.os_dir(os) / STATE, state, mode=0o644, indent=2)

    def entry(self, os: str, entry_id: str | None) -> Path | None:
        return self.os_dir(os) / STORE / entry_id if entry_id else None

    def current_dir(self, os: str) -> Path | None:
        """The folder of the repository currently served for an OS release."""
        return self.entry(os, self.read_state(os)["current"])

    def _entry_info(self, path: Path | None) -> dict:
        if path is None:
            return {}
        try:
            return json.loads((path / REPO_INFO).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def info(self, os: str) -> RepoInfo:
        """What the repo of one OS release holds now."""
        state = self.read_state(os)
        cur = self.entry(os, state["current"])
        meta, prev = self._entry_info(cur), self._entry_info(self.entry(os, state["previous"]))
        return RepoInfo(os=os, serves=self.os_dir(os).name, release=meta.get("release"),
                        repo_version=meta.get("repo_version"),
                        image_sha256=meta.get("image_sha256"), path=str(cur) if cur else None,
                        previous=prev.get("repo_version"))

    def oses(self) -> list[str]:
        """The OS releases that have a repo (or a redirect) on this node."""
        if not self.repo_dir.is_dir():
            return []
        return sorted(p.name for p in self.repo_dir.iterdir()
                      if not p.name.startswith(".") and (p.is_dir() or p.is_symlink()))

    def status(self) -> list[RepoInfo]:
        """Every repo of the node."""
        return [self.info(os) for os in self.oses()]

    def known_os(self, os: str | None = None) -> str | None:
        """The OS release a command acts on: the one given, the node's, or the only repo's."""
        if os or self.node_os():
            return os or self.node_os()
        found = [o for o in self.oses() if not (self.repo_dir / o).is_symlink()]
        return found[0] if len(found) == 1 else None

    def default_os(self, os: str | None) -> str:
        """known_os(), or a UsageError asking for --os."""
        if self.known_os(os):
            return self.known_os(os)
        found = [o for o in self.oses() if not (self.repo_dir / o).is_symlink()]
        raise UsageError("which OS release's repo?",
                         why=f"this node has repos for {', '.join(found) or 'none'}",
                         next="pass --os")

    def rollback(self, os: str | None = None) -> RepoInfo:
        """Make the previous repo current again (and the current one previous), in one rename."""
        os = self.default_os(os)
        with self.lock(self.os_dir(os).name):
            state = self.read_state(os)
            prev = self.entry(os, state["previous"])
            if prev is None or not prev.is_dir():
                raise Refused(f"no previous repository for {os} to roll back to",
                              why="the repo was installed once, or never",
                              next="refresh it from an OS image with `skylift repo update`")
            self.write_state(os, {"current": state["previous"], "previous": state["current"]})
        return self.info(os)

    def collect_garbage(self, os: str) -> None:
        """Remove store entries neither current nor previous, and stale staging folders.

        Called under the OS's lock, so a staging folder is never one still being written.
        """
        base = self.os_dir(os)
        state = self.read_state(os)
        keep = {state["current"], state["previous"]}
        for path in list((base / STORE).iterdir()) if (base / STORE).is_dir() else []:
            if path.name not in keep:
                # Out of the store first (atomic), so a delete cut short never leaves a
                # half-deleted entry that a later update would take for a complete one.
                trash = base / f"{STAGING_PREFIX}trash-{path.name}"
                path.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
        for path in base.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
