"""The cloud as its agents see it: every agent's version (hosts, primary and backup storages,
vRouters) and the VMs each runs.

Read straight from the agents (not from the MN), with bounded concurrency, so the proof does
not trust the component being upgraded. Where the agents are comes from the inventory through
SQL that works at every release (vRouters were `virtual_routers` before 4.0.0).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from skylift.agent.client import AsyncAgentClient
from skylift.agent.wire import agent_url
from skylift.engine.fan_out import fan_out
from skylift.errors import SkyliftError
from skylift.lineage import answers_inventory
from skylift.mn.agent_pool import AgentPool
from skylift.pki.trust import AgentTrust
from skylift.transport.ssh import new_event_loop
from skylift.mn.resources import (BACKUP_STORAGE, HOST, PRIMARY_STORAGE, VROUTER,
                                  storage_address)
from skylift.upgrade.facts import CloudFacts

@dataclass
class AgentView:
    """What one agent reported (or why it did not)."""

    uuid: str
    name: str
    address: str
    version: str | None = None
    vms: dict[str, dict] = field(default_factory=dict)  # vm uuid -> {boot_id, state, endpoint}
    error: str | None = None
    kind: str = HOST  # host, primary-storage, backup-storage or vrouter
    # the code the agent runs: "package" (installed from a repository: digest comparable
    # with the package's) or "checkout" (a development install of the lab's loopback nodes)
    code_source: str | None = None
    code_digest: str | None = None


@dataclass
class CloudView:
    """Agents by resource uuid, and the running VMs with the hosts that run them."""

    agents: dict[str, AgentView]

    def running(self) -> dict[str, list[tuple[str, str]]]:
        """vm uuid -> [(host uuid, boot id)] for every Running VM (two entries = split brain)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for host, view in self.agents.items():
            for vm, info in view.vms.items():
                if info.get("state") == "Running":
                    out.setdefault(vm, []).append((host, info.get("boot_id")))
        return out

    def counts(self) -> dict[str, int]:
        """Agents by kind."""
        out: dict[str, int] = {}
        for view in self.agents.values():
            out[view.kind] = out.get(view.kind, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"agents": {u: {"name": a.name, "kind": a.kind, "version": a.version,
                               "error": a.error, "vms": a.vms, "code_source": a.code_source,
                               "code_digest": a.code_digest}
                           for u, a in self.agents.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "CloudView":
        # a run recorded before kinds were kept read hosts only
        return cls({u: AgentView(u, a["name"], "", a.get("version"), a.get("vms", {}),
                                 a.get("error"), a.get("kind", HOST), a.get("code_source"),
                                 a.get("code_digest"))
                    for u, a in data["agents"].items()})


def agent_port(facts: CloudFacts) -> int:
    """The port agents listen on, as the MN reads it."""
    return int(facts.number("host", "agentPort"))


async def _read_agent(client: AsyncAgentClient, view: AgentView,
                      one_request: bool = False) -> AgentView:
    """Fill view from the agent: GET /v1/inventory when it should answer it (one_request),
    else, or when it does not, /v1/version and /v1/vms."""
    try:
        reply = vms = None
        if one_request:
            try:
                both = await client.inventory()
                reply, vms = both["version"], both["vms"]
            except SkyliftError:  # not yet at a release that has it: ask the old way
                pass
        if reply is None:
            reply, vms = await client.version(), await client.list_vms()
        view.version = reply.get("agent_version")
        code = reply.get("code") or {}
        view.code_source, view.code_digest = code.get("source"), code.get("digest")
        view.vms = {v["uuid"]: {"boot_id": v.get("boot_id"), "state": v.get("state"),
                                "endpoint": v.get("endpoint")} for v in vms}
    except SkyliftError as exc:
        view.error = exc.what
    except (ValueError, KeyError, TypeError) as exc:  # an answer that is not an agent's
        view.error = f"{type(exc).__name__}: {exc}"
    return view


def agent_addresses(facts: CloudFacts) -> list[tuple[str, str, str, str]]:
    """(kind, uuid, name, address) of every agent-backed resource, as the MN finds them."""
    out = [(HOST, u, n, ip) for u, n, ip in facts.rows(
        "SELECT uuid, name, management_ip FROM hosts")]
    with facts.engine.connect() as conn:  # not facts.tables: cached, and a migration renames
        tables = set(sa.inspect(conn).get_table_names())
    for table in ("vpc_vrouters", "virtual_routers"):
        if table in tables:
            out += [(VROUTER, u, n, ip) for u, n, ip in facts.rows(
                f"SELECT uuid, name, management_ip FROM {table}")]
            break
    for kind, table in ((PRIMARY_STORAGE, "primary_storages"),
                        (BACKUP_STORAGE, "backup_storages")):
        for u, n, url in facts.rows(f"SELECT uuid, name, url FROM {table}"):
            address = storage_address(url)
            if address:  # no host in the URL: served by the hosts' own agents
                out.append((kind, u, n, address))
    return out


def read_cloud(facts: CloudFacts, *, concurrency: int = 100, token: str | None = None,
               events=None, only: set[str] | None = None,
               skip: set[str] = frozenset(), trust: AgentTrust | None = None,
               expected: str | None = None) -> CloudView:
    """Ask every agent (hosts, storages, vRouters), or those of the uuids in only, and none
    of those in skip, for its version and VMs (over TLS, as the MN, given its trust); in
    one request each where the agents are expected at a release that answers it."""
    one_request = answers_inventory(expected)
    port = agent_port(facts)
    views = [AgentView(u, n, agent_url(ip, port), kind=kind)
             for kind, u, n, ip in agent_addresses(facts)
             if (only is None or u in only) and u not in skip]

    async def run() -> None:
        # the MN's sharded pools: one pool of every agent's connection is scanned whole on
        # each request, which made reading 1,004 agents spend 65 % of its CPU in the scan
        pool = AgentPool(max_concurrency=concurrency, timeout=15.0, token=token, trust=trust)
        pool.open()
        try:
            await fan_out(views, lambda v: _read_agent(
                pool.client(v.uuid, v.address, lambda: v.address), v, one_request),
                concurrency=concurrency, events=events, label="reading agents")
        finally:
            await pool.close()

    # on the MN's loop (uvloop where installed): TLS in C for 1,004 handshakes
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run())
    return CloudView({v.uuid: v for v in views})


def read_settled(facts: CloudFacts, target_version: str, *, timeout: float,
                 interval: float = 1.0, events=None, skip: set[str] = frozenset(),
                 trust: AgentTrust | None = None) -> CloudView:
    """The cloud once every agent answers on target_version, or as it is at the deadline.

    The MN upgrades agents as they reconnect, and the reconnect step waits only on what the
    database records (hosts' and vRouters' versions): a storage agent may still be restarting
    when the proof begins. Only the agents not there yet are asked again.
    """
    view = read_cloud(facts, events=events, skip=skip, trust=trust, expected=target_version)
    deadline = time.monotonic() + timeout
    while True:
        lagging = {u for u, a in view.agents.items() if a.error or a.version != target_version}
        if not lagging or time.monotonic() >= deadline:
            return view
        time.sleep(interval)
        view.agents.update(read_cloud(facts, only=lagging, trust=trust,
                                      expected=target_version).agents)
