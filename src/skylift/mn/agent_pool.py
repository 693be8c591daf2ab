"""The MN's HTTP connections to its agents: sharded keep-alive pools, one client per agent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from skylift.agent.client import AsyncAgentClient
from skylift.mn.agent_http import AgentTransport
from skylift.pki.trust import AgentTrust

POOL_SHARDS = 64
MAX_POOL_SHARDS = 4096


class AgentPool:
    """Async agent clients sharing a set of connection pools.

    A pool of 10,000 agents' keep-alive connections in one client made a storm quadratic
    under httpcore, which scanned its whole pool on every request; the shards (one per 4
    agents) stayed when its transport went (skylift.mn.agent_http): each keeps at most
    max_concurrency idle connections, as many as callers talk to at once. Shards are cheap to
    make because they share one TLS context (the cloud's: its CA and the MN's client
    certificate, loaded once) and skip proxy lookups in the environment: agents are reached
    directly on the management network, never through an HTTP proxy."""

    def __init__(self, *, max_concurrency: int, timeout: float, token: str | None,
                 connect_timeout: float | None = None,
                 trust: AgentTrust | None = None) -> None:
        self.max_concurrency, self.timeout, self.token = max_concurrency, timeout, token
        self.connect_timeout, self.trust = connect_timeout, trust
        self._shards: list[httpx.AsyncClient] | None = None
        self._clients: dict[str, tuple[str, AsyncAgentClient]] = {}

    def open(self, agents: int) -> None:
        """Make the pools (sized for about this many agents), if not made yet."""
        if self._shards is None:
            tls = self.trust.context if self.trust else httpx.create_ssl_context()
            shards = min(MAX_POOL_SHARDS, max(POOL_SHARDS, agents // 4))
            self._shards = [httpx.AsyncClient(timeout=self.timeout, trust_env=False,
                                              transport=AgentTransport(
                                                  verify=tls,
                                                  max_keepalive=self.max_concurrency))
                            for _ in range(shards)]

    @property
    def is_open(self) -> bool:
        return self._shards is not None

    def client(self, key: str, address: str, url: Callable[[], str]) -> AsyncAgentClient:
        """The client for one agent (kept while its address stays the same)."""
        known = self._clients.get(key)
        if known is not None and known[0] == address:
            return known[1]
        self.open(1)
        shard = self._shards[hash(address) % len(self._shards)]
        client = AsyncAgentClient(url(), self.token, self.timeout, http=shard,
                                  connect_timeout=self.connect_timeout, trust=self.trust)
        self._clients[key] = (address, client)
        return client

    async def close(self) -> None:
        """Close every pool; clients made before are not to be used again."""
        shards, self._shards = self._shards, None
        self._clients.clear()
        if shards is not None:
            await asyncio.gather(*(pool.aclose() for pool in shards))
