"""A client of one agent's API, for the management node and the lab.

Errors come back as the agent raised them (NoSuchVm, Refused, ...) or as AgentError when the
agent cannot be reached, so callers handle skylift errors only.

Given the cloud's AgentTrust, a client speaks TLS to an agent pinned to it and, to any other,
plain HTTP first and then TLS (see skylift.pki.trust); without one, plain HTTP only.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit, urlunsplit

import httpx

from skylift import errors
from skylift.agent.wire import INVENTORY_ROUTE, UPGRADE_ROUTE, token_headers
from skylift.pki.trust import AgentTrust


class Schemes:
    """Which scheme (plain HTTP, TLS) to speak to one agent, and what its answers teach."""

    def __init__(self, base_url: str, trust: AgentTrust | None) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        self.trust, self.address = trust, parts.hostname or ""
        self.plain = urlunsplit(("http", parts.netloc, parts.path, "", ""))
        self.tls = urlunsplit(("https", parts.netloc, parts.path, "", ""))
        self.tls_first = False
        self.last: str | None = None  # the base URL of the last answer

    def order(self) -> list[str]:
        """The base URLs to try, in order."""
        if self.trust is None:
            return [self.plain]
        if self.trust.pinned(self.address):
            return [self.tls]
        return [self.tls, self.plain] if self.tls_first else [self.plain, self.tls]

    def over_tls(self) -> bool:
        """Whether the agent's last answer came over TLS verified by the cloud's CA."""
        return self.trust is not None and self.last == self.tls

    def expect_tls(self) -> None:
        """The agent was just given a certificate: try TLS first (a plain attempt would only
        be hung up on), still falling back while it is not pinned (its restart may not have
        taken the certificate)."""
        self.tls_first = True

    def answered(self, base: str) -> None:
        """The agent answered at base: a verified TLS answer pins it."""
        self.last = base
        if base == self.tls and self.trust is not None:
            self.trust.pin(self.address)


def wrong_scheme(exc: httpx.HTTPError) -> bool:
    """Whether a failure means the agent speaks the other scheme: a TLS handshake that failed,
    or a plain request the agent's TLS server hung up on. A connection that was never made
    (a node that is down) is not: trying the other scheme would only wait twice."""
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return True
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def http_client(target, token: str | None = None, timeout: float = 10.0) -> httpx.Client:
    """A raw httpx client for an agent (an AgentHandle or a base URL)."""
    url = target if isinstance(target, str) else target.url
    return httpx.Client(base_url=url, timeout=timeout, headers=token_headers(token))


class AgentClient:
    """Typed calls to one agent: version, VMs, packages."""

    def __init__(self, target, token: str | None = None, timeout: float = 10.0,
                 trust: AgentTrust | None = None) -> None:
        url = target if isinstance(target, str) else target.url
        self.schemes = Schemes(url, trust)
        self.http = httpx.Client(timeout=timeout, headers=token_headers(token),
                                 verify=trust.context if trust else True, trust_env=False)

    def _call(self, method: str, path: str, **kw):
        urls = self.schemes.order()
        for i, base in enumerate(urls):
            try:
                resp = self.http.request(method, base + path, **kw)
            except httpx.HTTPError as exc:
                if i + 1 < len(urls) and wrong_scheme(exc):
                    continue
                raise _unreachable(base, exc) from None
            self.schemes.answered(base)
            return _answer(resp, method, path)

    def health(self) -> dict:
        return self._call("GET", "/v1/health")

    def version(self) -> dict:
        """agent_version, os_release, qemu, libvirt, role, uuid, driver."""
        return self._call("GET", "/v1/version")

    def boot_id(self) -> dict:
        return self._call("GET", "/v1/boot-id")

    def list_vms(self) -> list[dict]:
        return self._call("GET", "/v1/vms")

    def create_vm(self, uuid: str, name: str, ha: bool = False, start: bool = True) -> dict:
        return self._call("POST", "/v1/vms", json={"uuid": uuid, "name": name, "ha": ha,
                                                   "start": start})

    def vm_action(self, uuid: str, action: str) -> dict:
        """action: start, stop or reboot."""
        return self._call("POST", f"/v1/vms/{uuid}/{action}")

    def destroy_vm(self, uuid: str) -> None:
        self._call("DELETE", f"/v1/vms/{uuid}")

    def list_volumes(self) -> list[dict]:
        return self._call("GET", "/v1/volumes")

    def install_package(self, name: str, version: str) -> dict:
        return self._call("POST", "/v1/packages", json={"name": name, "version": version})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "AgentClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _json(resp: httpx.Response) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {}
    if isinstance(body, dict) and isinstance(body.get("detail"), dict):
        return body["detail"]
    return body if isinstance(body, dict) else {}


# --- async client (the management node talks to thousands of agents at once) ----------------


def async_http_pool(max_connections: int = 200, timeout: float = 10.0,
                    max_keepalive: int | None = None,
                    trust: AgentTrust | None = None) -> httpx.AsyncClient:
    """One httpx.AsyncClient whose connection pool every AsyncAgentClient can share.

    No base URL: each client sends absolute URLs, so one pool serves every agent. Agents are
    reached directly on the management network, never through a proxy of the environment.
    """
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_keepalive or max_connections)
    return httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False,
                             verify=trust.context if trust else True)


class AsyncAgentClient:
    """The async twin of AgentClient, for one agent, over a shared client of many agents:
    an httpx.AsyncClient, or the MN's own (skylift.mn.agent_http.AgentHttp), which answers
    `request` the same way.

    Errors are the same: the agent's own skylift errors, or AgentError when it cannot be
    reached. A client made without `http` owns its pool and closes it in aclose().
    """

    def __init__(self, target, token: str | None = None, timeout: float = 10.0,
                 http=None,
                 connect_timeout: float | None = None,
                 trust: AgentTrust | None = None) -> None:
        """connect_timeout: give up sooner on an agent whose address does not answer at all
        (a node that is down), while a slow answer still gets `timeout`. A shared `http`
        must have been made with the trust's context (async_http_pool(trust=...))."""
        self.base_url = (target if isinstance(target, str) else target.url).rstrip("/")
        self.schemes = Schemes(self.base_url, trust)
        self.headers = token_headers(token)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._own = http is None
        self.http = http if http is not None else async_http_pool(timeout=timeout, trust=trust)

    def _timeout(self, timeout: float | None) -> httpx.Timeout:
        total = timeout or self.timeout
        return httpx.Timeout(total, connect=min(total, self.connect_timeout or total))

    async def _send(self, method: str, url: str, timeout: float | None, kw: dict):
        try:
            return await self.http.request(method, url, headers=self.headers,
                                           timeout=self._timeout(timeout), **kw)
        except httpx.RemoteProtocolError:
            if method != "GET":
                raise
            # a kept-alive connection the agent closed meanwhile: a GET is safe to resend
            return await self.http.request(method, url, headers=self.headers,
                                           timeout=self._timeout(timeout), **kw)

    async def _call(self, method: str, path: str, timeout: float | None = None, **kw):
        urls = self.schemes.order()
        for i, base in enumerate(urls):
            try:
                resp = await self._send(method, base + path, timeout, kw)
            except httpx.HTTPError as exc:
                # the agent never acted on a request whose scheme it does not speak: resending
                # it over the other scheme cannot run it twice
                if i + 1 < len(urls) and wrong_scheme(exc):
                    continue
                raise _unreachable(base, exc) from None
            self.schemes.answered(base)
            return _answer(resp, method, path)

    async def health(self, timeout: float | None = None) -> dict:
        return await self._call("GET", "/v1/health", timeout=timeout)

    async def version(self, timeout: float | None = None) -> dict:
        """agent_version, os_release, qemu, libvirt, role, uuid, driver."""
        return await self._call("GET", "/v1/version", timeout=timeout)

    async def boot_id(self) -> dict:
        return await self._call("GET", "/v1/boot-id")

    async def list_vms(self) -> list[dict]:
        return await self._call("GET", "/v1/vms")

    async def inventory(self) -> dict:
        """{"version": the /v1/version document, "vms": the /v1/vms list} in one request
        (agents since lineage.AGENT_INVENTORY_SINCE)."""
        return await self._call("GET", INVENTORY_ROUTE)

    async def get_vm(self, uuid: str) -> dict:
        return await self._call("GET", f"/v1/vms/{uuid}")

    async def create_vm(self, uuid: str, name: str, ha: bool = False, start: bool = True) -> dict:
        return await self._call("POST", "/v1/vms", json={"uuid": uuid, "name": name, "ha": ha,
                                                         "start": start})

    async def vm_action(self, uuid: str, action: str) -> dict:
        """action: start, stop or reboot."""
        return await self._call("POST", f"/v1/vms/{uuid}/{action}")

    async def destroy_vm(self, uuid: str) -> None:
        await self._call("DELETE", f"/v1/vms/{uuid}")

    async def list_volumes(self) -> list[dict]:
        return await self._call("GET", "/v1/volumes")

    async def volume(self, action: str, uuid: str, **fields) -> dict:
        """POST /v1/volumes: action create (size, format, shared), attach (vm_uuid), detach, delete."""
        return await self._call("POST", "/v1/volumes", json={"action": action, "uuid": uuid,
                                                             **fields})

    async def list_packages(self) -> dict:
        return await self._call("GET", "/v1/packages")

    async def install_package(self, name: str, version: str) -> dict:
        return await self._call("POST", "/v1/packages", json={"name": name, "version": version})

    async def upgrade_self(self, version: str, sha256: str | None = None) -> dict:
        """Order the agent to install skylift-agent `version` and restart onto it
        (skylift.agent.self_upgrade); it answers before it restarts."""
        return await self._call("POST", UPGRADE_ROUTE,
                                json={"version": version, "sha256": sha256})

    async def aclose(self) -> None:
        """Close the pool if this client owns it (a shared pool is closed by its owner)."""
        if self._own:
            await self.http.aclose()

    async def __aenter__(self) -> "AsyncAgentClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def _unreachable(base_url, exc: httpx.HTTPError) -> errors.AgentError:
    """The error for an agent that did not answer at all, or not over verified TLS."""
    why = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    if str(base_url).startswith("https:") and wrong_scheme(exc):
        return errors.AgentTlsRefused(
            f"agent at {base_url} did not pass the TLS handshake", why=why,
            next="the agent must hold a certificate of this cloud's CA naming its address: "
                 "reconnect it so the MN gives it one (it is pinned to TLS)")
    return errors.AgentUnreachable(f"agent at {base_url} did not answer", why=why,
                                   next="check that the agent runs (GET /v1/health)",
                                   timed_out=isinstance(exc, httpx.TimeoutException))


def _answer(resp: httpx.Response, method: str, path: str):
    """The JSON of an agent's answer; its error answers raised as the skylift error they name."""
    if resp.status_code >= 400:
        body = _json(resp)
        cls = getattr(errors, str(body.get("error")), None)
        if not (isinstance(cls, type) and issubclass(cls, errors.SkyliftError)):
            cls = errors.AgentError
        raise cls(body.get("what") or f"agent answered {resp.status_code} to {method} {path}",
                  why=body.get("why", ""), next=body.get("next", ""))
    return resp.json()
