"""Installing the agent's code on a node, into a versioned place the agent service runs from.

    NODE_ROOT/agent/
        versions/<version>/   an unpacked skylift-agent package (`skylift/` importable here)
        deps/<version>/       an unpacked python3-agent-deps package
        current  -> versions/<v>     what the agent runs; switched atomically
        previous -> versions/<v>     the version before, kept so a failed upgrade switches back
        deps-current -> deps/<v>
        run                   `exec <python> "$@"` with PYTHONPATH current:deps-current

Every later command on the node goes through `run` (`run -m skylift.agent serve ...`,
`run -m skylift.agent.packages ...`), so it runs the installed code, never whatever python
finds first. A package is unpacked beside its final place and renamed into it (a crash leaves
the old version or the new one, never half of one); a symlink is switched by renaming a new
link over it. Re-installing the same version from the same file changes nothing.

Members are refused by the rule of every unpacking (skylift.member_names: no absolute name, no
`..`, no link or special file).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import zipfile
from pathlib import Path

from skylift.agent.code import code_digest
from skylift.agent.ids import check_package
from skylift.errors import ArtefactError, PackageDigestMismatch, Refused
from skylift.files import fsync_dir, sha256, write_atomic, write_synced
from skylift.member_names import unsafe_zip_entry

AGENT_PACKAGE = "skylift-agent"
DEPS_PACKAGE = "python3-agent-deps"
CODE_PACKAGES = (AGENT_PACKAGE, DEPS_PACKAGE)
INSTALLED = ".skylift-package.json"  # inside each unpacked version: what it was unpacked from
SETTINGS = "code.json"  # {"python": ...}: recorded at the first install, kept after


def agent_dir(node_root: Path) -> Path:
    return Path(node_root) / "agent"


def launcher(node_root: Path) -> Path:
    """NODE_ROOT/agent/run: the one way to run python with the installed agent code."""
    return agent_dir(node_root) / "run"


def default_python() -> str:
    """The node's python: the system one when it exists (never a venv's), else PATH's."""
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"


def _link_target(link: Path) -> str | None:
    """The version a symlink points at (its last path element), or None."""
    try:
        return Path(os.readlink(link)).name
    except OSError:
        return None


def current_version(node_root: Path) -> str | None:
    return _link_target(agent_dir(node_root) / "current")


def previous_version(node_root: Path) -> str | None:
    return _link_target(agent_dir(node_root) / "previous")


def _switch(link: Path, target: str) -> bool:
    """Point link at target (relative) atomically; False when it already does."""
    try:
        if os.readlink(link) == target:
            return False
    except OSError:
        pass
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)  # rename(2) over the old link: readers see old or new
    finally:
        if tmp.is_symlink():
            tmp.unlink()
    fsync_dir(link.parent)
    return True


def _unpack(file: Path, dest: Path, meta: dict) -> None:
    """Unpack a zip into dest (which must not exist) through a staging folder beside it."""
    try:
        zf = zipfile.ZipFile(file)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ArtefactError(f"cannot read the package {file.name}", why=str(exc),
                            next="download it again from the repository") from None
    with zf:
        for info in zf.infolist():
            why = unsafe_zip_entry(info)
            if why:
                raise ArtefactError(f"the package {file.name} holds an unsafe member "
                                    f"{info.filename!r}", why=why,
                                    next="use a package built by `skylift release build`")
        stage = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.unpack")
        stage.mkdir(parents=True)
        try:
            made = {stage}
            for info in zf.infolist():
                target = stage / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                # fsync each file: the rename below must never publish empty blocks
                write_synced(target, zf.read(info), 0o644)
            write_synced(stage / INSTALLED, (json.dumps(meta, sort_keys=True) + "\n").encode(),
                         0o644)
            for folder in made:
                fsync_dir(folder)
            os.rename(stage, dest)
            fsync_dir(dest.parent)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _installed_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / INSTALLED).read_text())
    except (OSError, ValueError):
        return None


def _place(file: Path, dest: Path, meta: dict) -> bool:
    """Unpack file as dest unless the same file is there already; True when it changed."""
    have = _installed_meta(dest)
    if have is not None and have.get("sha256") == meta["sha256"]:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # the same version from other bytes (a rebuild): the new one wins
        old = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.old")
        _unpack(file, dest.with_name(dest.name + ".new"), meta)
        os.rename(dest, old)
        os.rename(dest.with_name(dest.name + ".new"), dest)
        fsync_dir(dest.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        _unpack(file, dest, meta)
    return True


def launcher_text(node_root: Path, python: str) -> str:
    """The launcher: absolute paths only, so it works from any working folder."""
    base = agent_dir(Path(node_root).resolve())
    path = f"{base / 'current'}:{base / 'deps-current'}"
    return ("#!/bin/sh\n"
            "# skylift: python with the agent code installed on this node "
            "(skylift.agent.code_install)\n"
            f"PYTHONPATH={shlex.quote(path)}\nPYTHONNOUSERSITE=1\n"
            "export PYTHONPATH PYTHONNOUSERSITE\n"
            f"exec {shlex.quote(python)} \"$@\"\n")


def write_launcher(node_root: Path, python: str | None = None) -> Path:
    """Write NODE_ROOT/agent/run (python: recorded once, kept by later installs)."""
    base = agent_dir(node_root)
    base.mkdir(parents=True, exist_ok=True)
    settings = base / SETTINGS
    try:
        recorded = json.loads(settings.read_text()).get("python")
    except (OSError, ValueError):
        recorded = None
    python = python or recorded or default_python()
    if python != recorded:
        write_atomic(settings, (json.dumps({"python": python}) + "\n").encode(), mode=0o644)
    text = launcher_text(node_root, python)
    run = launcher(node_root)
    try:
        same = run.read_text() == text and os.access(run, os.X_OK)
    except OSError:
        same = False
    if not same:
        write_atomic(run, text.encode(), mode=0o755)
        run.chmod(0o755)  # executable whatever the umask
    return run


def install_code(node_root: Path, name: str, version: str, file: Path,
                 expected_sha256: str | None = None, python: str | None = None) -> dict:
    """Install a code package (skylift-agent or python3-agent-deps) from its file.

    Returns {"name", "version", "path", "sha256", "changed", "previous"} (and "code_digest"
    for skylift-agent). A file whose SHA-256 is not expected_sha256 is refused unread.
    """
    check_package(name, version)
    if name not in CODE_PACKAGES:
        raise Refused(f"{name} is not a code package", why=f"only {', '.join(CODE_PACKAGES)} "
                      "are unpacked on a node", next="install it without --file")
    file = Path(file)
    if not file.is_file():
        raise ArtefactError(f"no package file {file}", why="it does not exist",
                            next="give the path of the downloaded package")
    digest = sha256(file)
    if expected_sha256 and digest != expected_sha256.lower().removeprefix("sha256:"):
        raise PackageDigestMismatch(
            f"the package {file.name} is not the one expected",
            why=f"its SHA-256 is {digest}, the repository's index says {expected_sha256}",
            next="download it again; if it persists, update the repository from its image")
    base = agent_dir(Path(node_root).resolve())
    meta = {"name": name, "version": version, "sha256": digest}
    out = {"name": name, "version": version, "sha256": digest}
    if name == AGENT_PACKAGE:
        with zipfile.ZipFile(file) as zf:
            out["code_digest"] = code_digest((i.filename, zf.read(i)) for i in zf.infolist()
                                             if not i.is_dir())
        meta["code_digest"] = out["code_digest"]
        dest = base / "versions" / version
        changed = _place(file, dest, meta)
        before = current_version(node_root)
        if before is not None and before != version:
            _switch(base / "previous", f"versions/{before}")
        changed |= _switch(base / "current", f"versions/{version}")
        out["previous"] = before
    else:
        dest = base / "deps" / version
        changed = _place(file, dest, meta)
        out["previous"] = _link_target(base / "deps-current")
        changed |= _switch(base / "deps-current", f"deps/{version}")
    write_launcher(node_root, python)
    out.update(path=str(dest), changed=changed)
    return out


def switch_back(node_root: Path) -> str:
    """Point current back at previous (and previous at what was current); the version now
    current. Refused when no previous version is kept."""
    base = agent_dir(node_root)
    prev, cur = previous_version(node_root), current_version(node_root)
    if prev is None or not (base / "versions" / prev).is_dir():
        raise Refused(f"no previous agent version on {node_root}",
                      why="nothing was installed before the current version",
                      next="install the version wanted with `install skylift-agent VERSION`")
    _switch(base / "current", f"versions/{prev}")
    if cur is not None:
        _switch(base / "previous", f"versions/{cur}")
    if (base / "deps" / prev).is_dir():  # the code runs on the deps of its own release
        _switch(base / "deps-current", f"deps/{prev}")
    return prev
