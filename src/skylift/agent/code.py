"""Which code an agent runs: the running package's version and code digest
(skylift.codebase holds the digest's one definition, shared with the build)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from skylift.codebase import STAMP, code_digest, folder_files, is_code  # noqa: F401 (re-export)


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
        stamp = json.loads((folder.parent / STAMP).read_text())
    except (OSError, ValueError):
        stamp = None
    version = stamp.get("release") if isinstance(stamp, dict) else None
    return {"version": version, "digest": code_digest(folder_files(folder)),
            "source": "package" if stamp is not None else "checkout", "path": str(folder)}


def public_code() -> dict:
    """running_code() without the path: what the agent tells a client."""
    code = running_code()
    return {"version": code["version"], "digest": code["digest"], "source": code["source"]}
