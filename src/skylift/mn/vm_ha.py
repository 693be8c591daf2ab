"""VM high availability: restart a down host's HA VMs on another host of its cluster.

A host is judged down when it has missed `host.maxMissedPings` pings in a row (pinged every
`host.pingInterval` seconds by the connection manager). While the global setting ha.enable is
true, every VM of that host with ha_level NeverStop is created and started on another
Connected host of the same cluster, and vm_instances.host_uuid follows it.

The MN cannot tell a dead host from one whose agent is only slow or restarting: during a
reconnect storm (an MN or agent upgrade) a host whose VMs still run looks down, and HA starts
them a second time elsewhere, the same VM on two hosts (split brain). That is why an upgrade
turns ha.enable off for its duration and puts it back afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa

from skylift.db.models.compute import VmInstance
from skylift.errors import SkyliftError
from skylift.mn.connections import ConnectionManager
from skylift.mn import settings
from skylift.mn.resources import CONNECTED, HOST

log = logging.getLogger("skylift.mn.vm_ha")
HA_LEVEL = "NeverStop"


@dataclass(frozen=True)
class HaStart:
    """One VM that HA started on another host."""

    vm_uuid: str
    vm_name: str
    from_host: str
    to_host: str
    at: float


class VmHa:
    """Watches the connection manager's ping counts and restarts HA VMs of down hosts."""

    def __init__(self, engine: sa.Engine, connections: ConnectionManager, *,
                 ping_interval: float | None = None, max_missed_pings: int | None = None,
                 enabled: bool | None = None) -> None:
        """ping_interval / max_missed_pings: default the connection manager's (the host.*
        global settings); enabled: default the global setting ha.enable, read every round."""
        self.engine = engine
        self.cm = connections
        self._interval, self._max_missed, self._enabled = ping_interval, max_missed_pings, enabled
        self.starts: list[HaStart] = []
        self._handled: set[str] = set()  # hosts whose VMs were moved during this outage
        self._task: asyncio.Task | None = None

    @property
    def interval(self) -> float:
        if self._interval is not None:
            return self._interval
        # the manager's, once it has read the global settings (it starts first)
        return self.cm.options.ping_interval or 60.0

    @property
    def max_missed(self) -> int:
        if self._max_missed is not None:
            return self._max_missed
        return self.cm.options.max_missed_pings or 3

    def _read_enabled(self) -> bool:
        if self._enabled is not None:
            return self._enabled
        with self.engine.connect() as conn:
            return settings.read_flag(conn, "ha", "enable")

    async def start(self) -> None:
        """Start watching in the background."""
        self._task = asyncio.create_task(self._loop(), name="vm-ha")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad round must not end HA
                log.exception("VM HA round failed")
            await asyncio.sleep(self.interval)

    def down_hosts(self) -> list[str]:
        """Hosts that missed max_missed pings in a row."""
        return [uuid for uuid, res in list(self.cm.resources.items())
                if res.kind == HOST and self.cm.missed_pings(uuid) >= self.max_missed]

    async def check_once(self) -> list[HaStart]:
        """One round: restart the HA VMs of hosts newly judged down (when HA is on)."""
        for uuid in list(self._handled):
            if self.cm.missed_pings(uuid) == 0:
                self._handled.discard(uuid)  # it is back: a later outage is a new one
        down = [h for h in self.down_hosts() if h not in self._handled]
        if not down or not await asyncio.to_thread(self._read_enabled):
            return []
        started: list[HaStart] = []
        for host in down:
            moved = await self._fail_over(host)
            if moved is not None:
                self._handled.add(host)
                started += moved
        return started

    def _targets(self, host: str) -> list[str]:
        cluster = self.cm.resources[host].cluster_uuid
        return [u for u, r in self.cm.resources.items()
                if r.kind == HOST and u != host and r.cluster_uuid == cluster
                and self.cm.state(u) == CONNECTED and self.cm.missed_pings(u) == 0]

    def _ha_vms(self, host: str) -> list[tuple[str, str]]:
        t = VmInstance.__table__
        with self.engine.connect() as conn:
            return [(r.uuid, r.name) for r in conn.execute(
                sa.select(t.c.uuid, t.c.name).where(t.c.host_uuid == host,
                                                     t.c.ha_level == HA_LEVEL,
                                                     t.c.state == "Running"))]

    def _record(self, moves: list[HaStart]) -> None:
        t = VmInstance.__table__
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.uuid == sa.bindparam("b_uuid"))
                         .values(host_uuid=sa.bindparam("to"), last_host_uuid=sa.bindparam("frm")),
                         [{"b_uuid": m.vm_uuid, "to": m.to_host, "frm": m.from_host}
                          for m in moves])

    async def _fail_over(self, host: str) -> list[HaStart] | None:
        """Start the host's HA VMs elsewhere; None when no other host can take them yet."""
        vms = await asyncio.to_thread(self._ha_vms, host)
        targets = self._targets(host)
        if vms and not targets:
            log.warning("host %s is down but no other Connected host of its cluster can take "
                        "its %d HA VMs; retrying", self.cm.resources[host].name, len(vms))
            return None
        moves: list[HaStart] = []
        for i, (vm_uuid, name) in enumerate(vms):
            target = targets[i % len(targets)]  # spread the VMs over the cluster
            try:
                agent = self.cm.agent(target)
                vm = await agent.create_vm(vm_uuid, name, ha=True, start=True)
                if vm.get("state") != "Running":
                    await agent.vm_action(vm_uuid, "start")
            except SkyliftError as exc:
                log.warning("HA could not start VM %s on %s: %s", name, target, exc.what)
                continue
            move = HaStart(vm_uuid, name, host, target, time.time())
            moves.append(move)
            self.starts.append(move)
            log.warning("VM HA: host %s is down (%d missed pings): started VM %s on host %s",
                        self.cm.resources[host].name, self.cm.missed_pings(host), name,
                        self.cm.resources[target].name)
        if moves:
            await asyncio.to_thread(self._record, moves)
        return moves
