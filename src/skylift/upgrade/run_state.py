"""What an upgrade run remembers between its steps and across a crash (0600, atomic).

Values the upgrade changes and must put back (VM HA), the backup it made, and the cloud as it
was before (for the proof) live here, in the run folder beside the journal, never in the
cloud's database. No secret is ever written here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


class RunState:
    """A small JSON document in the run folder, replaced atomically on every change."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = run_dir / STATE_FILE
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() \
            else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def set(self, key: str, value: Any) -> None:
        """Record a value durably (temp file 0600, fsync, rename, fsync of the folder)."""
        self.data[key] = value
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(self.data, indent=1, default=str).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.run_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def discard(self, key: str) -> None:
        if key in self.data:
            del self.data[key]
            self.set("_", None)
            del self.data["_"]
