"""What one running management node knows about itself: mode, database, token, registries."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from skylift.config import skylift_home
from skylift.db.engine import Database
from skylift.mn.auth_limit import FailureLimiter
from skylift.mn.heartbeat import Heartbeat
from skylift.mn.inflight import InFlight
from skylift.mn.mode import RunMode
from skylift.mn.upgrade_view import UpgradeView


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
    # why the database member of this MN may not serve (skylift.mn.quorum), for people;
    # None while it has quorum (or is no Galera member at all)
    quorum_lost: str | None = None
    tls: dict | None = None  # uvicorn's ssl_certfile/ssl_keyfile when it serves HTTPS
    share_hosts: bool = False  # one of several MNs on the database (skylift.mn.ownership)
    inflight: InFlight = field(default_factory=InFlight)
    # the upgrade run folder of this machine's state folder, for the console's upgrade page
    upgrade_view: UpgradeView = field(default_factory=lambda: UpgradeView(skylift_home()))
    auth_failures: FailureLimiter = field(default_factory=FailureLimiter)
    started_at: dt.datetime = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    pid: int = field(default_factory=os.getpid)
    # starting and stopping the parts (skylift.mn.parts) one at a time: a drain and the
    # quorum watch may both want to
    parts_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)

    @property
    def mode(self) -> str:
        """normal, maintenance or draining (maintenance too while quorum is lost)."""
        if self.draining:
            return "draining"
        return "maintenance" if self.quorum_lost else self.run.mode

    @property
    def restricted(self) -> bool:
        """Whether only the maintenance calls are served."""
        return self.draining or self.run.maintenance or self.quorum_lost is not None

    @property
    def restricted_why(self) -> str:
        if self.quorum_lost:
            return (f"{self.quorum_lost}; this management node drives no host and serves "
                    "only the maintenance calls until it rejoins")
        if self.run.maintenance:
            return f"the management node is in maintenance mode: {self.run.reason}"
        return "the management node is draining before it stops for an upgrade"

    @property
    def serving(self) -> bool:
        """Whether this MN serves its cloud (the VIP may rest here): not draining, its
        database member has quorum, and not started with --maintenance. An MN in maintenance
        only because its database is of an older release serves: during an upgrade that is
        the MN that answers (and how the lab's stand-in for an older release's MN looks)."""
        return not self.draining and self.quorum_lost is None and not self.run.asked

    @property
    def reason(self) -> str:
        """Why the mode is what it is, for people."""
        if self.draining:
            return "the management node is draining before it stops"
        return self.quorum_lost or self.run.reason

    @property
    def heartbeat_state(self) -> str:
        if self.draining:
            return "draining"
        return "maintenance" if self.run.maintenance or self.quorum_lost else "running"
