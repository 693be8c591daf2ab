"""How the MN connects to and pings its agents: what a caller fixes, the rest from the cloud's
global settings (read when the manager starts, as the old product did)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import sqlalchemy as sa

from skylift.mn import settings


@dataclass(frozen=True)
class ConnectOptions:
    """Connection tuning; a field left None takes the matching `host.*` global setting."""

    agent_port: int | None = None         # host.agentPort
    ping_interval: float | None = None    # host.pingInterval (seconds)
    max_missed_pings: int | None = None   # host.maxMissedPings
    ping_timeout: float | None = None     # default: the ping interval, at most 5 s
    update_packages: bool | None = None   # host.updatePkgWhenConnect
    max_concurrency: int = 200            # agents talked to at once
    jitter: float = 0.5                   # seconds a storm spreads its first contacts over
    token: str | None = None              # the agents' API token, when they want one
    timeout: float = 10.0                 # seconds per agent request
    # seconds to open a connection: an agent on the management network accepts at once, so
    # a node that is down costs a connect slot this long, not the whole request timeout
    connect_timeout: float = 2.0
    restart_timeout: float = 30.0         # seconds for an upgraded agent to answer again
    flush_interval: float = 0.5           # seconds between batched state writes
    retry_min: float = 0.5                # first retry of a failed connect, seconds after
    retry_max: float = 2.0                # retries back off up to this many seconds apart
    probe_timeout: float = 1.5            # a retry's health probe gives up after this
    probe_concurrency: int = 500          # retry probes at once (a probe is one connect)
    converge_window: float = 600.0        # retries run this long after a start or a request

    def resolved(self, conn: sa.Connection) -> ConnectOptions:
        """These options with every unset one read from the global settings."""
        interval = (self.ping_interval if self.ping_interval is not None
                    else settings.read_number(conn, "host", "pingInterval"))
        return replace(
            self,
            agent_port=self.agent_port or int(settings.read_number(conn, "host", "agentPort")),
            ping_interval=interval,
            max_missed_pings=(self.max_missed_pings if self.max_missed_pings is not None
                              else int(settings.read_number(conn, "host", "maxMissedPings"))),
            ping_timeout=self.ping_timeout or min(interval, 5.0),
            update_packages=(self.update_packages if self.update_packages is not None
                             else settings.read_flag(conn, "host", "updatePkgWhenConnect")))
