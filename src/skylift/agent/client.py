"""A client of one agent's API, for the management node and the lab.

Errors come back as the agent raised them (NoSuchVm, Refused, ...) or as AgentError when the
agent cannot be reached, so callers handle skylift errors only.
"""

from __future__ import annotations

import httpx

from skylift import errors
from skylift.agent.wire import token_headers


def http_client(target, token: str | None = None, timeout: float = 10.0) -> httpx.Client:
    """A raw httpx client for an agent (an AgentHandle or a base URL)."""
    url = target if isinstance(target, str) else target.url
    return httpx.Client(base_url=url, timeout=timeout, headers=token_headers(token))


class AgentClient:
    """Typed calls to one agent: version, VMs, packages."""

    def __init__(self, target, token: str | None = None, timeout: float = 10.0) -> None:
        self.http = http_client(target, token, timeout)

    def _call(self, method: str, path: str, **kw):
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise _unreachable(self.http.base_url, exc) from None
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
                    max_keepalive: int | None = None) -> httpx.AsyncClient:
    """One httpx.AsyncClient whose connection pool every AsyncAgentClient can share.

    No base URL: each client sends absolute URLs, so one pool serves every agent.
    """
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_keepalive or max_connections)
    return httpx.AsyncClient(timeout=timeout, limits=limits)


class AsyncAgentClient:
    """The async twin of AgentClient, for one agent, over a (shared) httpx.AsyncClient.

    Errors are the same: the agent's own skylift errors, or AgentError when it cannot be
    reached. A client made without `http` owns its pool and closes it in aclose().
    """

    def __init__(self, target, token: str | None = None, timeout: float = 10.0,
                 http: httpx.AsyncClient | None = None,
                 connect_timeout: float | None = None) -> None:
        """connect_timeout: give up sooner on an agent whose address does not answer at all
        (a node that is down), while a slow answer still gets `timeout`."""
        self.base_url = (target if isinstance(target, str) else target.url).rstrip("/")
        self.headers = token_headers(token)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._own = http is None
        self.http = http if http is not None else async_http_pool(timeout=timeout)

    def _timeout(self, timeout: float | None) -> httpx.Timeout:
        total = timeout or self.timeout
        return httpx.Timeout(total, connect=min(total, self.connect_timeout or total))

    async def _call(self, method: str, path: str, timeout: float | None = None, **kw):
        try:
            try:
                resp = await self.http.request(method, self.base_url + path,
                                               headers=self.headers,
                                               timeout=self._timeout(timeout), **kw)
            except httpx.RemoteProtocolError:
                if method != "GET":
                    raise
                # a kept-alive connection the agent closed meanwhile: a GET is safe to resend
                resp = await self.http.request(method, self.base_url + path,
                                               headers=self.headers,
                                               timeout=self._timeout(timeout), **kw)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from None
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

    async def aclose(self) -> None:
        """Close the pool if this client owns it (a shared pool is closed by its owner)."""
        if self._own:
            await self.http.aclose()

    async def __aenter__(self) -> "AsyncAgentClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


def _unreachable(base_url, exc: httpx.HTTPError) -> errors.AgentError:
    """The error for an agent that did not answer at all."""
    return errors.AgentUnreachable(f"agent at {base_url} did not answer",
                                   why=type(exc).__name__ + (f": {exc}" if str(exc) else ""),
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
