"""The MN's HTTP connections to its agents: one keep-alive client, one AsyncAgentClient per
agent."""

from __future__ import annotations

from collections.abc import Callable

from skylift.agent.client import AsyncAgentClient
from skylift.mn.agent_http import AgentHttp
from skylift.pki.trust import AgentTrust

# idle connections kept per caller that talks at once: an agent asked again soon (the storm's
# next request, the next ping) is reached without a new TLS handshake
IDLE_PER_CALLER = 4


class AgentPool:
    """Async agent clients sharing one client of many agents (skylift.mn.agent_http).

    A pool of 10,000 agents' keep-alive connections in one httpx client made a storm
    quadratic under httpcore, which scanned its whole pool on every request; AgentHttp keeps
    idle connections per agent, so one serves every agent. It holds the cloud's TLS context
    (its CA and the MN's client certificate, loaded once) and never looks for a proxy in the
    environment: agents are reached directly on the management network."""

    def __init__(self, *, max_concurrency: int, timeout: float, token: str | None,
                 connect_timeout: float | None = None,
                 trust: AgentTrust | None = None) -> None:
        self.max_concurrency, self.timeout, self.token = max_concurrency, timeout, token
        self.connect_timeout, self.trust = connect_timeout, trust
        self._http: AgentHttp | None = None
        self._clients: dict[str, tuple[str, AsyncAgentClient]] = {}
        self._opened_before = 0  # by the clients closed so far

    def open(self) -> None:
        """Make the connection client, if not made yet."""
        if self._http is None:
            self._http = AgentHttp(verify=self.trust.context if self.trust else None,
                                   max_keepalive=IDLE_PER_CALLER * self.max_concurrency,
                                   timeout=self.timeout)

    @property
    def is_open(self) -> bool:
        return self._http is not None

    @property
    def connections_opened(self) -> int:
        """Connections made to agents since this pool was made (over TLS, handshakes)."""
        return self._opened_before + (self._http.opened if self._http else 0)

    def client(self, key: str, address: str, url: Callable[[], str]) -> AsyncAgentClient:
        """The client for one agent (kept while its address stays the same)."""
        known = self._clients.get(key)
        if known is not None and known[0] == address:
            return known[1]
        self.open()
        client = AsyncAgentClient(url(), self.token, self.timeout, http=self._http,
                                  connect_timeout=self.connect_timeout, trust=self.trust)
        self._clients[key] = (address, client)
        return client

    async def close(self) -> None:
        """Close every idle connection; clients made before are not to be used again."""
        http, self._http = self._http, None
        self._clients.clear()
        if http is not None:
            self._opened_before += http.opened
            await http.aclose()
