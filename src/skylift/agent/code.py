"""Which code an agent runs: the code digest, and the running package's version and digest.

The code digest names the skylift product code by content: SHA-256 over sorted lines
"<archive name>\\0<sha256 of the file>\\n" of every file under `skylift/`, leaving out the
build stamp (`skylift/agent_build.json`: the same code stamped for two releases is the same
code), the lab (never shipped), and compiled caches (written by whoever runs the code). The
build side (skylift.release.agent_code) computes it over a package's zip, a node over the
folder it runs from: one definition, so the two agree.

This module imports only the standard library on purpose: the build side evaluates the
definition carried inside the package it digests (see release/agent_code.py), so the digest of
a package is always what that package's agent will report.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PREFIX = "skylift/"
STAMP = "skylift/agent_build.json"  # {"release": ...}, written only into an agent package
_NOT_CODE_DIRS = ("skylift/lab/",)


def is_code(name: str) -> bool:
    """Whether an archive name (skylift/...) counts towards the code digest."""
    if not name.startswith(PREFIX) or name.endswith("/") or name == STAMP:
        return False
    if name.startswith(_NOT_CODE_DIRS) or "/__pycache__/" in f"/{name}":
        return False
    return not name.endswith((".pyc", ".pyo"))


def code_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """The code digest of (archive name, content) pairs; names outside the code are ignored."""
    lines = sorted(f"{name}\0{hashlib.sha256(data).hexdigest()}\n"
                   for name, data in files if is_code(name))
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def folder_files(package_dir: Path) -> Iterable[tuple[str, bytes]]:
    """(archive name, content) of every file of a skylift package folder, as a zip names them."""
    root = Path(package_dir)
    for path in root.rglob("*"):
        rel = f"{PREFIX}{path.relative_to(root).as_posix()}"
        if is_code(rel) and path.is_file():
            yield rel, path.read_bytes()


def package_folder() -> Path:
    """The folder of the running skylift package."""
    import skylift  # the package itself: ground floor

    return Path(skylift.__file__).resolve().parent


@lru_cache(maxsize=1)
def running_code() -> dict:
    """The code this process runs: {"version", "digest", "source", "path"}.

    source "package": it runs from an installed agent package (its stamp names the release);
    "checkout": from a development tree or a wheel, whose version the node's package database
    tells instead. Computed once: the code of a running process does not change under it.
    """
    folder = package_folder()
    try:
        stamp = json.loads((folder / "agent_build.json").read_text())
    except (OSError, ValueError):
        stamp = None
    version = stamp.get("release") if isinstance(stamp, dict) else None
    return {"version": version, "digest": code_digest(folder_files(folder)),
            "source": "package" if stamp is not None else "checkout", "path": str(folder)}


def public_code() -> dict:
    """running_code() without the path: what the agent tells a client."""
    code = running_code()
    return {"version": code["version"], "digest": code["digest"], "source": code["source"]}
