"""One upgrade run as its steps see it: the context, what the run remembers, the MN, the
run folder and the event bus. Steps import this type; the procedure (single_mn) builds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from skylift.config import load_config, upgrade_run_dir
from skylift.engine.events import EventBus
from skylift.mn.launch import mn_client
from skylift.upgrade.context import UpgradeContext
from skylift.upgrade.mn_control import MnControl
from skylift.upgrade.run_state import RunState


@dataclass
class UpgradeRun:
    """What the steps share: the context, the remembered state, the MN and the event bus."""

    ctx: UpgradeContext
    run_dir: Path
    events: EventBus = field(default_factory=EventBus)

    def __post_init__(self) -> None:
        self.state = RunState(self.run_dir)
        db_url = self.ctx.db.url_without_password()
        self.mn = MnControl(self.ctx.mn_url, self.ctx.mn_token, db_url, self.ctx.node_root,
                            self.ctx.home, db_password=self.ctx.db.url.password)
        self.backup_dir = self.ctx.backup_dir or load_config(self.ctx.home).backups()

    def console_assets(self) -> dict | None:
        """The web console's asset names as the MN serves them now (None if it cannot say)."""
        try:
            with mn_client(self.ctx.mn_url, self.ctx.mn_token) as client:
                resp = client.get("/v1/console/assets")
            return resp.json() if resp.status_code == 200 else None
        except httpx.HTTPError:
            return None


def run_dir(home: Path) -> Path:
    return upgrade_run_dir(home)


def journal_path(home: Path) -> Path:
    return run_dir(home) / "journal.jsonl"
