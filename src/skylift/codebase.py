"""What skylift's product code is, file by file, and its digest: one definition for the build
(skylift.release.agent_code, over a package's zip) and for a node (skylift.agent.code, over
the folder an agent runs from), so the two agree.

The code digest is SHA-256 over sorted lines "<archive name>\\0<sha256 of the file>\\n" of every
file under `skylift/`, the agent package's release stamp (`skylift/agent_build.json`) included:
the stamp is part of what runs (it is the version the agent reports), so the packages of two
releases differ even where their Python files do not. The lab (never shipped) and compiled
caches (written by whoever runs the code) are left out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

PREFIX = "skylift/"
STAMP = "skylift/agent_build.json"  # {"release": ...}, written only into an agent package
NOT_CODE_DIRS = ("skylift/lab/",)


def is_code(name: str) -> bool:
    """Whether an archive name (skylift/...) counts towards the code digest."""
    if not name.startswith(PREFIX) or name.endswith("/"):
        return False
    if name.startswith(NOT_CODE_DIRS) or "/__pycache__/" in f"/{name}":
        return False
    return not name.endswith((".pyc", ".pyo"))


def code_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """The code digest of (archive name, content) pairs; names outside the code are ignored."""
    lines = sorted(f"{name}\0{hashlib.sha256(data).hexdigest()}\n"
                   for name, data in files if is_code(name))
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def folder_files(package_dir: Path) -> Iterable[tuple[str, bytes]]:
    """(archive name, content) of every code file of a skylift package folder, as a zip names
    them."""
    root = Path(package_dir)
    for path in root.rglob("*"):
        rel = f"{PREFIX}{path.relative_to(root).as_posix()}"
        if is_code(rel) and path.is_file():
            yield rel, path.read_bytes()
