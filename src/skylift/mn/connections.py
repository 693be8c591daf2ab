"""The MN's connection manager: connect every agent-backed resource,
keep pinging, upgrade agents and host packages on connect, and refuse VM and volume work on a
host that is still Connecting.

    cm = ConnectionManager(engine, repo_root=mn_node_root, node_roots={uuid: folder, ...})
    await cm.start()                      # the reconnect storm, then pings in the background
    cm.require_connected(host_uuid)       # HostReconnecting while Connecting
    await cm.agent(host_uuid).create_vm(...)
    report = await cm.reconnect_all()     # again, on demand (after an MN upgrade)
    await cm.stop()

States live in memory (the API reads them without touching the database) and reach the
`status` columns in batches (see resources.PendingWrites). Everything runs on one event loop;
the database is written from a worker thread so a slow commit never stalls the pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from skylift.agent.client import AsyncAgentClient
from skylift.errors import HostDisconnected, HostReconnecting, NoSuchResource, SkyliftError
from skylift.mn.agent_upgrade import ConnectOutcome, NodeOps, RepoCatalog, upgrade_on_connect
from skylift.mn import settings
from skylift.mn.resources import (CONNECTED, CONNECTING, DISCONNECTED, HOST, VROUTER,
                                  PendingWrites, Resource, load_resources)

log = logging.getLogger("skylift.mn.connections")
POOL_SHARDS = 64
MAX_POOL_SHARDS = 4096
Progress = Callable[[int, int, int], None]  # (done, total, failures)


@dataclass
class ReconnectReport:
    """What one reconnect storm did."""

    total: int = 0
    connected: int = 0
    agents_upgraded: int = 0
    packages_updated: int = 0  # hosts whose libvirt/QEMU were updated
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # uuid -> what went wrong
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def per_second(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {"total": self.total, "connected": self.connected, "failed": self.failed,
                "agents_upgraded": self.agents_upgraded,
                "packages_updated": self.packages_updated, "seconds": round(self.seconds, 3),
                "per_second": round(self.per_second, 1), "by_kind": self.by_kind,
                "failures": self.failures}


_storms = 0  # storms running in this process (the GC setting is process-wide)
_gc_threshold = gc.get_threshold()


@contextlib.contextmanager
def _storm_gc():
    """Fewer, cheaper garbage collections while a storm runs; put back afterwards.

    Every SSH connection leaves reference cycles, so the collector runs every few hundred
    allocations and its full passes walk the whole heap (10,000 resources, tasks, pools).
    Freezing what exists and collecting the young generation every 100,000 allocations cut
    the MN's CPU per upgraded node from 7.4 to 5.5 ms at 4,000 nodes (wall 35 -> 23 s)."""
    global _storms, _gc_threshold
    _storms += 1
    if _storms == 1:
        _gc_threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        _storms -= 1
        if _storms == 0:
            gc.set_threshold(*_gc_threshold)
            gc.unfreeze()


class ConnectionManager:
    """Connections from the MN to every host, storage and vRouter agent."""

    def __init__(self, engine: sa.Engine, *, agent_port: int | None = None,
                 repo_root: Path | None = None, max_concurrency: int = 200,
                 jitter: float = 0.5, ping_interval: float | None = None,
                 max_missed_pings: int | None = None, ping_timeout: float | None = None,
                 node_roots=None, transport_for=None, node_ops: NodeOps | None = None,
                 update_packages: bool | None = None, token: str | None = None,
                 timeout: float = 10.0, restart_timeout: float = 30.0,
                 flush_interval: float = 0.5, on_progress: Progress | None = None) -> None:
        """engine: the cloud's database. agent_port: default the global setting host.agentPort,
        else 7070. repo_root: the MN's node root holding its local repo (None: no upgrades).
        ping_interval / max_missed_pings: default the host.* global settings. node_roots (a
        mapping uuid -> folder, or a callable) and transport_for(resource) tell how to reach a
        node to upgrade it (default: this machine); node_ops replaces both. update_packages:
        default the global setting host.updatePkgWhenConnect, read when the MN starts."""
        self.engine = engine
        self._agent_port = agent_port
        self.catalog = RepoCatalog(repo_root)
        self.repo_root = repo_root
        self.max_concurrency = max_concurrency
        self.jitter = jitter
        self._ping_interval, self._max_missed = ping_interval, max_missed_pings
        self._ping_timeout = ping_timeout
        self.ops = node_ops or NodeOps(transport_for=transport_for, node_root_for=node_roots)
        self._update_packages = update_packages
        self.token, self.timeout, self.restart_timeout = token, timeout, restart_timeout
        self.flush_interval = flush_interval
        self.on_progress = on_progress
        self.resources: dict[str, Resource] = {}
        self._state: dict[str, str] = {}
        self._missed: dict[str, int] = {}
        self._inflight: dict[str, asyncio.Task] = {}
        self._clients: dict[str, AsyncAgentClient] = {}
        self._sem = asyncio.Semaphore(max_concurrency)
        self._flush_lock = asyncio.Lock()
        self.pending = PendingWrites()
        self.http = None
        self._loops: list[asyncio.Task] = []
        self.initial_report: ReconnectReport | None = None
        self.agent_upgrades: list[tuple[str, str, str]] = []  # (uuid, from, to)

    # --- settings --------------------------------------------------------------------------
    def _read_settings(self) -> None:
        with self.engine.connect() as conn:
            port = settings.read_number(conn, "host", "agentPort")
            interval = settings.read_number(conn, "host", "pingInterval")
            missed = settings.read_number(conn, "host", "maxMissedPings")
            # takes effect at MN start, as in the old product (SPEC §2, 3.9.0)
            update = settings.read_flag(conn, "host", "updatePkgWhenConnect")
            resources = load_resources(conn)
        self.agent_port = self._agent_port or int(port)
        self.ping_interval = self._ping_interval if self._ping_interval is not None else interval
        self.max_missed_pings = self._max_missed if self._max_missed is not None else int(missed)
        self.ping_timeout = self._ping_timeout or min(self.ping_interval, 5.0)
        self.update_packages = (self._update_packages if self._update_packages is not None
                                else update)
        self._merge(resources)

    def _merge(self, resources: list[Resource]) -> None:
        for res in resources:
            known = self.resources.get(res.uuid)
            if known is None or known.address != res.address:
                self._clients.pop(res.uuid, None)
            self.resources[res.uuid] = res
            self._state.setdefault(res.uuid, DISCONNECTED)
            self._missed.setdefault(res.uuid, 0)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self, wait: bool = True) -> None:
        """Connect every known resource (the storm), then keep pinging in the background.

        wait=False returns at once and lets the storm run behind (the API can serve
        meanwhile: operations on hosts still Connecting are refused)."""
        await asyncio.to_thread(self._read_settings)
        self._ensure_http()
        self._loops.append(asyncio.create_task(self._flush_loop(), name="cm-flush"))

        async def storm() -> None:
            self.initial_report = await self.reconnect_all(self.on_progress)

        task = asyncio.create_task(storm(), name="cm-storm")
        # pings run beside the storm, as in the old product: a resource that is slow to
        # reconnect misses pings (and looks down to VM HA, see vm_ha.py)
        self._loops += [task, asyncio.create_task(self._ping_loop(), name="cm-ping")]
        if wait:
            while self.initial_report is None and not task.done():
                await asyncio.sleep(0.02)
            if task.done() and task.exception():
                raise task.exception()

    async def stop(self) -> None:
        """Stop pinging and connecting; write what is pending; close the connection pool."""
        tasks = self._loops + list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
        await self.flush()
        if self.http is not None:
            await asyncio.gather(*(pool.aclose() for pool in self.http))
            self.http = None
        self._clients.clear()
        self.ops.close()

    def _ensure_http(self) -> None:
        # httpcore scans its whole pool on every request (and each idle connection's check
        # costs a getpeername and a poll): one pool of 10,000 agents' keep-alive connections
        # made a storm quadratic (55 hosts/s at 2,000 hosts). One shard per 4 resources keeps
        # pooling and each scan short. Shards are cheap to make (~0.04 ms) because they share
        # one TLS context (else each loads the CA bundle, ~20 ms) and skip proxy lookups in the
        # environment (trust_env=False, ~0.2 ms each): agents are reached directly on the
        # management network, never through an HTTP proxy.
        if self.http is None:
            tls = httpx.create_ssl_context()
            limits = httpx.Limits(max_connections=self.max_concurrency,
                                  max_keepalive_connections=256)
            shards = min(MAX_POOL_SHARDS, max(POOL_SHARDS, len(self.resources) // 4))
            self.http = [httpx.AsyncClient(timeout=self.timeout, limits=limits, verify=tls,
                                           trust_env=False) for _ in range(shards)]

    def _pool(self, address: str):
        return self.http[hash(address) % len(self.http)]

    # --- what the API asks -----------------------------------------------------------------
    def state(self, uuid: str) -> str:
        """Connected, Connecting or Disconnected (a resource never connected: Disconnected)."""
        return self._state.get(uuid, DISCONNECTED)

    def missed_pings(self, uuid: str) -> int:
        """Pings (and connect attempts) missed in a row."""
        return self._missed.get(uuid, 0)

    def counts(self) -> dict[str, int]:
        """How many resources are in each state."""
        out = {CONNECTED: 0, CONNECTING: 0, DISCONNECTED: 0}
        for st in self._state.values():
            out[st] += 1
        return out

    def require_connected(self, host_uuid: str) -> None:
        """Refuse VM and volume work on a host that is not Connected."""
        st = self.state(host_uuid)
        if st == CONNECTED:
            return
        res = self.resources.get(host_uuid)
        name = res.name if res else host_uuid
        if st == CONNECTING:
            raise HostReconnecting(f"host {name} is reconnecting, retry later",
                                   why="its agent is being reconnected (and upgraded) by the "
                                       "management node",
                                   next="retry in a few seconds; GET the host to see its status")
        raise HostDisconnected(f"host {name} is disconnected",
                               why="its agent does not answer the management node",
                               next="check the host and its agent; it reconnects once the "
                                    "agent answers")

    def agent(self, host_uuid: str) -> AsyncAgentClient:
        """The async client of a resource's agent (sharing the MN's connection pool)."""
        client = self._clients.get(host_uuid)
        if client is None:
            res = self.resources.get(host_uuid)
            if res is None:
                raise NoSuchResource(f"no host, storage or vRouter {host_uuid} is known",
                                     next="list the hosts, or reconnect after adding it")
            self._ensure_http()
            client = AsyncAgentClient(res.url(self.agent_port), self.token, self.timeout,
                                      http=self._pool(res.address))
            self._clients[host_uuid] = client
        return client

    # --- connecting ------------------------------------------------------------------------
    def _set_state(self, res: Resource, state: str) -> None:
        if self._state.get(res.uuid) != state:
            self._state[res.uuid] = state
            self.pending.status[(res.kind, res.uuid)] = state

    async def connect_host(self, host_uuid: str) -> dict:
        """(Re)connect one resource now (upgrading its agent if need be); its /v1/version."""
        if host_uuid not in self.resources:
            await asyncio.to_thread(self._read_settings)
            if host_uuid not in self.resources:
                raise NoSuchResource(f"no host, storage or vRouter {host_uuid} is known",
                                     next="add it to the inventory first")
        return (await self._connect(host_uuid)).reply

    def _connect(self, uuid: str) -> "asyncio.Future[ConnectOutcome]":
        # one connect per resource at a time: a ping-triggered reconnect and the storm share it
        task = self._inflight.get(uuid)
        if task is None or task.done():
            task = asyncio.ensure_future(self._connect_now(self.resources[uuid]))
            self._inflight[uuid] = task
            task.add_done_callback(lambda t, u=uuid: self._inflight.get(u) is t
                                   and self._inflight.pop(u))
        return asyncio.shield(task)

    async def _connect_now(self, res: Resource) -> ConnectOutcome:
        self._set_state(res, CONNECTING)
        client = self.agent(res.uuid)
        try:
            reply = await client.version()
            if self.catalog.repo is not None:
                outcome = await upgrade_on_connect(
                    res, reply, client, self.catalog, self.ops,
                    update_packages=self.update_packages, restart_timeout=self.restart_timeout)
            else:
                outcome = ConnectOutcome(reply)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._missed[res.uuid] = self._missed.get(res.uuid, 0) + 1
            self._set_state(res, DISCONNECTED)
            raise
        self._record_versions(res, outcome)
        self._missed[res.uuid] = 0
        self._set_state(res, CONNECTED)
        return outcome

    def _record_versions(self, res: Resource, outcome: ConnectOutcome) -> None:
        reply = outcome.reply
        if outcome.agent_upgraded_from:
            self.agent_upgrades.append((res.uuid, outcome.agent_upgraded_from,
                                        reply.get("agent_version")))
            log.info("%s %s: agent %s -> %s", res.kind, res.name, outcome.agent_upgraded_from,
                     reply.get("agent_version"))
        cols: dict[str, str] = {}
        if res.kind in (HOST, VROUTER) and reply.get("agent_version") not in (None, "unknown"):
            if reply["agent_version"] != res.agent_version:
                cols["agent_version"] = res.agent_version = reply["agent_version"]
        if res.kind == HOST:
            if reply.get("qemu") and reply["qemu"] != res.qemu_version:
                cols["qemu_version"] = res.qemu_version = reply["qemu"]
            if reply.get("libvirt") and reply["libvirt"] != res.libvirt_version:
                cols["libvirt_version"] = res.libvirt_version = reply["libvirt"]
        if cols:
            self.pending.versions.setdefault((res.kind, res.uuid), {}).update(cols)

    async def reconnect_all(self, on_progress: Progress | None = None) -> ReconnectReport:
        """The storm: reconnect every resource with bounded concurrency and jitter."""
        started = time.perf_counter()
        if self.http is None or not self.resources:
            await asyncio.to_thread(self._read_settings)
            self._ensure_http()
        self.catalog = RepoCatalog(self.repo_root)  # the repo may have been refreshed
        resources = list(self.resources.values())
        for res in resources:
            self._set_state(res, CONNECTING)
        await self.flush()
        report = ReconnectReport(total=len(resources))
        progress = on_progress or self.on_progress
        done = 0

        async def one(res: Resource) -> None:
            nonlocal done
            if self.jitter:
                # spread the storm so thousands of agents are not hit in the same instant
                await asyncio.sleep(random.uniform(0, self.jitter))
            async with self._sem:
                try:
                    outcome = await self._connect(res.uuid)
                    report.connected += 1
                    report.by_kind[res.kind] = report.by_kind.get(res.kind, 0) + 1
                    report.agents_upgraded += bool(outcome.agent_upgraded_from)
                    report.packages_updated += bool(outcome.packages)
                except SkyliftError as exc:
                    report.failures[res.uuid] = f"{res.kind} {res.name}: {exc.what}" + (
                        f" ({exc.why})" if exc.why else "")
                except Exception as exc:  # a bug on one node must not end the storm
                    log.exception("connecting %s %s failed", res.kind, res.name)
                    report.failures[res.uuid] = f"{res.kind} {res.name}: {exc!r}"
            done += 1
            if progress:
                progress(done, report.total, report.failed)

        with _storm_gc():
            await asyncio.gather(*(one(r) for r in resources))
        await self.flush()
        report.seconds = time.perf_counter() - started
        log.info("reconnected %d/%d resources in %.1fs (%d agents upgraded, %d failed)",
                 report.connected, report.total, report.seconds, report.agents_upgraded,
                 report.failed)
        return report

    # --- pinging and writing ---------------------------------------------------------------
    async def ping_all(self) -> None:
        """Ping every resource once; a Disconnected one that answers is reconnected."""
        async def one(res: Resource) -> None:
            async with self._sem:
                try:
                    await self.agent(res.uuid).health(timeout=self.ping_timeout)
                except SkyliftError:
                    missed = self._missed[res.uuid] = self._missed.get(res.uuid, 0) + 1
                    if missed >= self.max_missed_pings and self.state(res.uuid) == CONNECTED:
                        log.warning("%s %s missed %d pings: Disconnected", res.kind, res.name,
                                    missed)
                        self._set_state(res, DISCONNECTED)
                    return
            self._missed[res.uuid] = 0
            if self.state(res.uuid) == DISCONNECTED and res.uuid not in self._inflight:
                self._background_connect(res.uuid)

        await asyncio.gather(*(one(r) for r in list(self.resources.values())))

    def _background_connect(self, uuid: str) -> None:
        fut = self._connect(uuid)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen: no warning

    async def _ping_loop(self) -> None:
        while True:  # the first round one interval after start: the storm has just connected
            started = time.monotonic()
            await asyncio.sleep(self.ping_interval)
            await self.ping_all()
            await asyncio.sleep(max(0.0, self.ping_interval - (time.monotonic() - started)))

    async def flush(self) -> None:
        """Write pending states and versions now (one transaction, grouped statements)."""
        async with self._flush_lock:
            if not self.pending:
                return
            batch = self.pending.take()
            try:
                await asyncio.to_thread(batch.write, self.engine)
            except BaseException:
                self.pending.restore(batch)  # newer changes win; nothing is lost
                raise

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:  # a busy database must not end the writer; next round retries
                log.exception("writing connection states failed; retrying")
