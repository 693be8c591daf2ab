"""The agent's wire contract, imported by the agent app and by every client of an agent."""

from __future__ import annotations

TOKEN_HEADER = "X-Skylift-Token"
DEFAULT_PORT = 7070  # where agents listen unless the global setting host.agentPort says otherwise


def agent_url(address: str, port: int) -> str:
    """The base URL of the agent at address (an IPv6 address in brackets) and port."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def token_headers(token: str | None) -> dict[str, str]:
    """The headers that carry an agent token (none without one)."""
    return {TOKEN_HEADER: token} if token else {}

# routes the MN calls only on agents of a release that has them (skylift.lineage)
INVENTORY_ROUTE = "/v1/inventory"  # version and VMs in one answer
UPGRADE_ROUTE = "/v1/agent/upgrade"  # the order to upgrade itself (agent.self_upgrade)
