"""The cloud as its agents see it: every host's agent version and the VMs it runs.

Read straight from the agents (not from the MN), with bounded concurrency, so the proof does
not trust the component being upgraded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from skylift.engine.runner import fan_out
from skylift.upgrade.facts import CloudFacts

DEFAULT_AGENT_PORT = 7070


@dataclass
class AgentView:
    """What one agent reported (or why it did not)."""

    uuid: str
    name: str
    address: str
    version: str | None = None
    vms: dict[str, dict] = field(default_factory=dict)  # vm uuid -> {boot_id, state, endpoint}
    error: str | None = None


@dataclass
class CloudView:
    """Agents by host uuid, and the running VMs with the hosts that run them."""

    agents: dict[str, AgentView]

    def running(self) -> dict[str, list[tuple[str, str]]]:
        """vm uuid -> [(host uuid, boot id)] for every Running VM (two entries = split brain)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for host, view in self.agents.items():
            for vm, info in view.vms.items():
                if info.get("state") == "Running":
                    out.setdefault(vm, []).append((host, info.get("boot_id")))
        return out

    def to_dict(self) -> dict:
        return {"agents": {u: {"name": a.name, "version": a.version, "error": a.error,
                               "vms": a.vms} for u, a in self.agents.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "CloudView":
        return cls({u: AgentView(u, a["name"], "", a.get("version"), a.get("vms", {}),
                                 a.get("error")) for u, a in data["agents"].items()})


def agent_port(facts: CloudFacts) -> int:
    value = facts.setting("host", "agentPort")
    return int(value) if value and value.isdigit() else DEFAULT_AGENT_PORT


async def _read_agent(client: httpx.AsyncClient, view: AgentView) -> AgentView:
    try:
        version = (await client.get(f"{view.address}/v1/version")).json()
        vms = (await client.get(f"{view.address}/v1/vms")).json()
        view.version = version.get("agent_version")
        items = vms.get("vms", vms) if isinstance(vms, dict) else vms
        view.vms = {v["uuid"]: {"boot_id": v.get("boot_id"), "state": v.get("state"),
                                "endpoint": v.get("endpoint")} for v in items}
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        view.error = f"{type(exc).__name__}: {exc}"
    return view


def read_cloud(facts: CloudFacts, *, concurrency: int = 100, token: str | None = None,
               events=None) -> CloudView:
    """Ask every host's agent for its version and VMs."""
    port = agent_port(facts)
    views = [AgentView(u, n, f"http://{ip}:{port}")
             for u, n, ip in facts.rows("SELECT uuid, name, management_ip FROM hosts")]

    async def run() -> None:
        headers = {"X-Skylift-Token": token} if token else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=15.0, headers=headers, limits=limits) as client:
            await fan_out(views, lambda v: _read_agent(client, v), concurrency=concurrency,
                          events=events, label="reading agents")

    asyncio.run(run())
    return CloudView({v.uuid: v for v in views})
