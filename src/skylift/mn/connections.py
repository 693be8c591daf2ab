"""The MN's connection manager: connect every agent-backed resource,
keep pinging, upgrade agents and host packages on connect, and refuse VM and volume work on a
host that is still Connecting.

    cm = ConnectionManager(engine, ConnectOptions(jitter=0), repo_root=mn_node_root)
    await cm.start()                      # the reconnect storm, then pings in the background
    cm.require_connected(host_uuid)       # HostReconnecting while Connecting
    await cm.agent(host_uuid).create_vm(...)
    report = await cm.reconnect_all()     # again, on demand (after an MN upgrade)
    await cm.stop()

Everything runs on one event loop; the database is written from a worker thread so a slow
commit never stalls the pings. The parts: connect_options (tuning), agent_pool (HTTP),
connection_states (who is connected), storm (a storm's report), agent_upgrade (what a connect
upgrades).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from skylift.agent.client import AsyncAgentClient
from skylift.db.conflicts import retry_conflicts
from skylift.errors import NoSuchResource, SkyliftError, error_text
from skylift.mn.agent_pool import AgentPool
from skylift.lineage import AGENT_TLS_SINCE
from skylift.mn.agent_upgrade import (ConnectOutcome, NodeOps, RepoCatalog, upgrade_on_connect,
                                      vkey)
from skylift.pki.trust import AgentTrust
from skylift.mn.connect_options import ConnectOptions
from skylift.mn.connect_failures import describe, reason_of
from skylift.mn.connection_states import ConnectionStates
from skylift.mn.convergence import Convergence
from skylift.mn.ownership import Ownership
from skylift.mn.resources import (CONNECTED, CONNECTING, DISCONNECTED, HOST, VROUTER, Resource,
                                  load_resources)
from skylift.mn.storm import ReconnectReport, storm_gc

log = logging.getLogger("skylift.mn.connections")
OWNERSHIP_INTERVAL = 2.0  # seconds between looks at which MNs are live
STOP_FLUSH_TIMEOUT = 10.0  # seconds the last write of the states may take at stop
Progress = Callable[[int, int, int], None]  # (done, total, failures)

__all__ = ["ConnectOptions", "ConnectionManager", "ReconnectReport"]


def _log_failure(task: asyncio.Task) -> None:
    """A background task of the manager that ended with an error says so in the log (its
    resources would otherwise sit in Connecting with nothing said)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed: %r", task.get_name(), task.exception())


class ConnectionManager:
    """Connections from the MN to every host, storage and vRouter agent."""

    def __init__(self, engine: sa.Engine, options: ConnectOptions = ConnectOptions(), *,
                 repo_root: Path | None = None, node_ops: NodeOps | None = None,
                 on_progress: Progress | None = None,
                 trust: AgentTrust | None = None, ownership: Ownership | None = None) -> None:
        """engine: the cloud's database. options: tuning (unset ones from the global
        settings, read at start). repo_root: the MN's node root holding its local repo (None:
        no upgrades). node_ops: how to reach a node to upgrade it (default: this machine).
        trust: the cloud's CA and the MN's client certificate (None: plain HTTP only); an
        agent upgraded on connect is given its certificate and speaks TLS from then on.
        ownership: this MN's share of the resources when several MNs share the database
        (skylift.mn.ownership; None: it drives them all)."""
        self.engine = engine
        self.ownership = ownership
        self.trust = trust
        self.options = options
        self.catalog = RepoCatalog(repo_root)
        self.repo_root = repo_root
        self.ops = node_ops or NodeOps()
        self.on_progress = on_progress
        self.resources: dict[str, Resource] = {}
        self.states = ConnectionStates()
        self.pool = AgentPool(max_concurrency=options.max_concurrency, timeout=options.timeout,
                              token=options.token, connect_timeout=options.connect_timeout,
                              trust=trust)
        self._inflight: dict[str, asyncio.Task] = {}
        self._sem = asyncio.Semaphore(options.max_concurrency)
        self._flush_lock = asyncio.Lock()
        self._loops: list[asyncio.Task] = []
        self.initial_report: ReconnectReport | None = None
        self.agent_upgrades: list[tuple[str, str, str]] = []  # (uuid, from, to)
        self.convergence = Convergence(
            retry_min=options.retry_min, retry_max=options.retry_max,
            window=options.converge_window, probe=self._probe, connect=self._connect,
            busy=lambda uuid: uuid in self._inflight,
            concurrency=max(1, options.probe_concurrency))

    @property
    def agent_port(self) -> int | None:
        return self.options.agent_port

    @property
    def token(self) -> str | None:
        return self.options.token

    def _read_settings(self) -> None:
        with self.engine.connect() as conn:
            self.options = self.options.resolved(conn)
            resources = load_resources(conn)
        for res in resources:
            self.resources[res.uuid] = res
            self.states.track(res.uuid)

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self, wait: bool = True) -> None:
        """Connect every known resource (the storm), then keep pinging in the background.

        wait=False returns at once and lets the storm run behind (the API can serve
        meanwhile: operations on hosts still Connecting are refused)."""
        await asyncio.to_thread(self._read_settings)
        self.pool.open()
        self._loops.append(asyncio.create_task(self._flush_loop(), name="cm-flush"))
        self.convergence.open()  # what the storm cannot connect is retried on a backoff
        self._loops.append(asyncio.create_task(self.convergence.run(), name="cm-converge"))

        async def storm() -> None:
            self.initial_report = await self.reconnect_all(self.on_progress)

        if self.ownership is not None:
            await asyncio.to_thread(self.ownership.refresh)
            self._loops.append(asyncio.create_task(self._ownership_loop(), name="cm-owners"))
        task = asyncio.create_task(storm(), name="cm-storm")
        task.add_done_callback(_log_failure)
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
        try:
            # bounded: a database that refuses (a Galera member out of quorum) or hangs must
            # not keep the pool open; the states are set again at the next start's storm
            await asyncio.wait_for(self.flush(), STOP_FLUSH_TIMEOUT)
        except (sa.exc.SQLAlchemyError, asyncio.TimeoutError) as exc:
            log.warning("connection states not written at stop: %s",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        finally:
            await self.pool.close()
            self.ops.close()

    def mine(self, uuid: str) -> bool:
        """Whether this MN drives the resource (all of them, unless MNs share the cloud)."""
        return self.ownership is None or self.ownership.owns(uuid)

    def owned(self) -> list[Resource]:
        """The resources this MN connects, pings, reconnects and upgrades."""
        return [r for r in self.resources.values() if self.mine(r.uuid)]

    async def _ownership_loop(self) -> None:
        """Follow the live MNs: a resource that falls to this MN is connected now (its MN
        died or left); one that moves to another MN is left to it."""
        while True:
            await asyncio.sleep(OWNERSHIP_INTERVAL)
            try:
                changed = await asyncio.to_thread(self.ownership.refresh)
            except sa.exc.SQLAlchemyError as exc:  # the database away: keep the last view
                log.warning("cannot read the management nodes: %s", exc)
                continue
            except Exception:  # a bug here must not end the following for good
                log.exception("reading the management nodes failed")
                continue
            if not changed:
                continue
            if set(self.resources) != await asyncio.to_thread(self._known_uuids):
                await asyncio.to_thread(self._read_settings)
            taken = [r for r in self.owned() if self.state(r.uuid) != CONNECTED
                     and r.uuid not in self._inflight]
            log.info("management nodes now %s: this MN drives %d resources, connecting %d",
                     ", ".join(m[:8] for m in self.ownership.ring.members),
                     len(self.owned()), len(taken))
            for res in taken:
                self._background_connect(res.uuid)

    def _known_uuids(self) -> set[str]:
        with self.engine.connect() as conn:
            return {r.uuid for r in load_resources(conn)}

    # --- what the API asks -----------------------------------------------------------------
    def state(self, uuid: str) -> str:
        """Connected, Connecting or Disconnected (a resource never connected: Disconnected)."""
        return self.states.state(uuid)

    def missed_pings(self, uuid: str) -> int:
        """Pings (and connect attempts) missed in a row."""
        return self.states.missed(uuid)

    def counts(self) -> dict[str, int]:
        """How many resources are in each state."""
        return self.states.counts()

    def require_connected(self, host_uuid: str) -> None:
        """Refuse VM and volume work on a host that is not Connected."""
        res = self.resources.get(host_uuid)
        self.states.require_connected(host_uuid, res.name if res else host_uuid)

    def agent(self, host_uuid: str) -> AsyncAgentClient:
        """The async client of a resource's agent (sharing the MN's connection pool)."""
        res = self.resources.get(host_uuid)
        if res is None:
            raise NoSuchResource(f"no host, storage or vRouter {host_uuid} is known",
                                 next="list the hosts, or reconnect after adding it")
        return self.pool.client(res.uuid, res.address, lambda: res.url(self.agent_port))

    # --- connecting ------------------------------------------------------------------------
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
        self.states.set(res, CONNECTING)
        client = self.agent(res.uuid)
        if self.trust is not None and vkey(res.agent_version) >= vkey(AGENT_TLS_SINCE):
            # deployed with a certificate: a plain attempt first would only be hung up on
            client.schemes.expect_tls()
        try:
            reply = await client.version()
            if self.catalog.repo is not None:
                outcome = await upgrade_on_connect(
                    res, reply, client, self.catalog, self.ops,
                    update_packages=self.options.update_packages,
                    restart_timeout=self.options.restart_timeout, trust=self.trust)
            else:
                outcome = ConnectOutcome(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.states.miss(res.uuid)
            self.states.failed(res.uuid, reason_of(exc), error_text(exc))
            self.states.set(res, DISCONNECTED)
            self.convergence.failed(res.uuid)
            raise
        self._record_versions(res, outcome)
        self.states.connected(res.uuid)
        self.states.set(res, CONNECTED)
        self.convergence.succeeded(res.uuid)
        return outcome

    async def _probe(self, uuid: str) -> None:
        """A convergence retry's cheap first question: does the agent answer at all?"""
        try:
            await self.agent(uuid).health(timeout=self.options.probe_timeout)
        except SkyliftError as exc:
            self.states.failed(uuid, reason_of(exc), error_text(exc))
            raise

    # --- convergence: what is pending, and why ---------------------------------------------
    def converge(self, seconds: float | None = None) -> dict:
        """Retry every pending resource now and keep retrying on a short backoff (for
        `seconds`, default the converge window); the pending summary."""
        for res in self.owned():
            if self.state(res.uuid) != CONNECTED and res.uuid not in self._inflight:
                self.convergence.retry_now(res.uuid)
        self.convergence.open(seconds)
        return self.pending()

    def pending(self) -> dict:
        """Every resource this MN drives that is not Connected, with why, since when, and when
        it is retried."""
        items = []
        owned = self.owned()
        for res in owned:
            uuid = res.uuid
            state = self.state(uuid)
            if state == CONNECTED:
                continue
            failure = self.states.failure(uuid)
            if uuid in self._inflight or state == CONNECTING:
                reason = "connecting"
            else:
                reason = failure.reason if failure else "not-tried"
            retry_in = self.convergence.next_retry_in(uuid)
            items.append({
                "uuid": uuid, "kind": res.kind, "name": res.name, "address": res.address,
                "state": state, "reason": reason, "meaning": describe(reason).meaning,
                "remedy": describe(reason).remedy,
                "detail": failure.detail if failure else "",
                "attempts": failure.attempts if failure else 0,
                "failing_since": failure.since if failure else None,
                "last_attempt": failure.last if failure else None,
                "next_retry_in": round(retry_in, 2) if retry_in is not None else None})
        items.sort(key=lambda i: (i["reason"], i["kind"], i["name"]))
        by_reason: dict[str, int] = {}
        for item in items:
            by_reason[item["reason"]] = by_reason.get(item["reason"], 0) + 1
        return {"total": len(owned), "connected": len(owned) - len(items),
                "pending": items, "by_reason": by_reason,
                "converging": self.convergence.is_open}

    def _record_versions(self, res: Resource, outcome: ConnectOutcome) -> None:
        reply = outcome.reply
        if outcome.agent_upgraded_from:
            self.agent_upgrades.append((res.uuid, outcome.agent_upgraded_from,
                                        reply.get("agent_version")))
            # one line per node would bury the log in a storm: the storm logs its progress
            log.debug("%s %s: agent %s -> %s", res.kind, res.name, outcome.agent_upgraded_from,
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
            self.states.pending.versions.setdefault((res.kind, res.uuid), {}).update(cols)

    async def reconnect_all(self, on_progress: Progress | None = None) -> ReconnectReport:
        """The storm: reconnect every resource with bounded concurrency and jitter."""
        started = time.perf_counter()
        if not self.pool.is_open or not self.resources:
            await asyncio.to_thread(self._read_settings)
            self.pool.open()
        self.catalog = RepoCatalog(self.repo_root)  # the repo may have been refreshed
        resources = self.owned()
        for res in resources:
            self.states.set(res, CONNECTING)
        try:
            await self.flush()
        except sa.exc.SQLAlchemyError as exc:  # the flush loop writes them later: storm on
            log.warning("connection states not written before the storm: %s",
                        str(exc).splitlines()[0])
        report = ReconnectReport(total=len(resources))
        opened = self.pool.connections_opened
        progress = on_progress or self.on_progress
        done = 0
        reasons: dict[str, int] = {}  # failures by reason, as they happened

        async def one(res: Resource) -> None:
            nonlocal done
            if self.options.jitter:
                # spread the storm so thousands of agents are not hit in the same instant
                await asyncio.sleep(random.uniform(0, self.options.jitter))
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
                    reasons[reason_of(exc)] = reasons.get(reason_of(exc), 0) + 1
                except Exception as exc:  # a bug on one node must not end the storm
                    log.exception("connecting %s %s failed", res.kind, res.name)
                    report.failures[res.uuid] = f"{res.kind} {res.name}: {exc!r}"
                    reasons["agent-error"] = reasons.get("agent-error", 0) + 1
            done += 1
            if progress:
                progress(done, report.total, report.failed)

        async def log_progress() -> None:  # a line every few seconds, not one per node
            while True:
                await asyncio.sleep(5.0)
                log.info("reconnecting: %d of %d done, %d connected, %d failed", done,
                         report.total, report.connected, report.failed)

        reporter = asyncio.create_task(log_progress())
        try:
            with storm_gc():
                await asyncio.gather(*(one(r) for r in resources))
        finally:
            reporter.cancel()
        await self.flush()
        report.agent_connections = self.pool.connections_opened - opened
        report.seconds = time.perf_counter() - started
        log.info("reconnected %d/%d resources in %.1fs (%d agents upgraded, %d failed%s)",
                 report.connected, report.total, report.seconds, report.agents_upgraded,
                 report.failed, "".join(f", {n} {code}" for code, n in sorted(reasons.items())))
        return report

    # --- pinging and writing ---------------------------------------------------------------
    async def ping_all(self) -> None:
        """Ping every resource once; a Disconnected one that answers is reconnected."""
        async def one(res: Resource) -> None:
            async with self._sem:
                try:
                    await self.agent(res.uuid).health(timeout=self.options.ping_timeout)
                except SkyliftError:
                    missed = self.states.miss(res.uuid)
                    if (missed >= self.options.max_missed_pings
                            and self.state(res.uuid) == CONNECTED):
                        log.warning("%s %s missed %d pings: Disconnected", res.kind, res.name,
                                    missed)
                        self.states.set(res, DISCONNECTED)
                    return
            self.states.answered(res.uuid)
            if self.state(res.uuid) == DISCONNECTED and res.uuid not in self._inflight:
                self._background_connect(res.uuid)

        await asyncio.gather(*(one(r) for r in self.owned()))

    def _background_connect(self, uuid: str) -> None:
        fut = self._connect(uuid)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # seen: no warning

    async def _ping_loop(self) -> None:
        while True:  # the first round one interval after start: the storm has just connected
            started = time.monotonic()
            await asyncio.sleep(self.options.ping_interval)
            await self.ping_all()
            await asyncio.sleep(max(0.0, self.options.ping_interval - (time.monotonic() - started)))

    async def flush(self) -> None:
        """Write pending states and versions now (one transaction, grouped statements)."""
        async with self._flush_lock:
            pending = self.states.pending
            if not pending:
                return
            batch = pending.take()
            try:
                # MNs sharing a Galera cluster write their states at once: a transaction that
                # loses a certification conflict is run again (skylift.db.conflicts)
                await asyncio.to_thread(retry_conflicts, lambda: batch.write(self.engine))
            except BaseException:
                pending.restore(batch)  # newer changes win; nothing is lost
                raise

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.flush_interval)
            try:
                await self.flush()
            except Exception:  # a busy database must not end the writer; next round retries
                log.exception("writing connection states failed; retrying")
