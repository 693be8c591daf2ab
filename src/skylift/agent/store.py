"""Durable JSON files in a node root: written atomically so a crash never leaves half a file.

Every state file of a node (node.json, packages.json, volumes.json, VM run files) goes through
here: write a temporary file in the same folder, fsync it, rename it over the old one, fsync
the folder. A reader sees the old content or the new one, never a mix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skylift import files


def write_json(path: Path, data: Any, *, mode: int = 0o644) -> None:
    """Replace the file at path with data as JSON, atomically and durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_json(path, data, mode=mode, indent=2, sort_keys=True)


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON content of path, or default when the file does not exist."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return default
