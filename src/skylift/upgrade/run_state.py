"""What an upgrade run remembers between its steps and across a crash (0600, atomic).

Values the upgrade changes and must put back (VM HA), the backup it made, and the cloud as it
was before (for the proof) live here, in the run folder beside the journal, never in the
cloud's database. No secret is ever written here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skylift.files import write_json

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
        """Record a value durably (0600, atomically: see skylift.files)."""
        self.data[key] = value
        self._save()

    def discard(self, key: str) -> None:
        if key in self.data:
            del self.data[key]
            self._save()

    def _save(self) -> None:
        write_json(self.path, self.data, indent=1, default=str)
