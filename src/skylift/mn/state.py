"""What one running management node knows about itself: mode, database, token, registries."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from skylift.db.engine import Database
from skylift.mn.auth_limit import FailureLimiter
from skylift.mn.heartbeat import Heartbeat
from skylift.mn.inflight import InFlight
from skylift.mn.mode import RunMode


@dataclass
class MnState:
    """The running MN's context, shared by the API modules (app.state.mn)."""

    db: Database
    engine: sa.Engine
    run: RunMode
    token: str  # the admin token at start (token_file, when given, is what counts after)
    node_root: Path
    token_file: Path | None = None  # the admin-token file, re-read when rotated
    agent_port: int | None = None  # None: the global setting host.agentPort, else 7070
    heartbeat: Heartbeat | None = None
    manager: object | None = None  # skylift.mn.connections.ConnectionManager (normal mode)
    vm_ha: object | None = None
    draining: bool = False
    tls: dict | None = None  # uvicorn's ssl_certfile/ssl_keyfile when it serves HTTPS
    share_hosts: bool = False  # one of several MNs on the database (skylift.mn.ownership)
    inflight: InFlight = field(default_factory=InFlight)
    auth_failures: FailureLimiter = field(default_factory=FailureLimiter)
    started_at: dt.datetime = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    pid: int = field(default_factory=os.getpid)

    @property
    def mode(self) -> str:
        """normal, maintenance or draining."""
        return "draining" if self.draining else self.run.mode

    @property
    def restricted(self) -> bool:
        """Whether only the maintenance calls are served."""
        return self.draining or self.run.maintenance

    @property
    def restricted_why(self) -> str:
        if self.run.maintenance:
            return f"the management node is in maintenance mode: {self.run.reason}"
        return "the management node is draining before it stops for an upgrade"

    @property
    def heartbeat_state(self) -> str:
        return "draining" if self.draining else (
            "maintenance" if self.run.maintenance else "running")
