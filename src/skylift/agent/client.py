"""A client of one agent's API, for the management node and the lab.

Errors come back as the agent raised them (NoSuchVm, Refused, ...) or as AgentError when the
agent cannot be reached, so callers handle skylift errors only.
"""

from __future__ import annotations

import httpx

from skylift import errors

TOKEN_HEADER = "X-Skylift-Token"


def http_client(target, token: str | None = None, timeout: float = 10.0) -> httpx.Client:
    """A raw httpx client for an agent (an AgentHandle or a base URL)."""
    url = target if isinstance(target, str) else target.url
    headers = {TOKEN_HEADER: token} if token else {}
    return httpx.Client(base_url=url, timeout=timeout, headers=headers)


class AgentClient:
    """Typed calls to one agent: version, VMs, packages."""

    def __init__(self, target, token: str | None = None, timeout: float = 10.0) -> None:
        self.http = http_client(target, token, timeout)

    def _call(self, method: str, path: str, **kw):
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise errors.AgentError(f"agent at {self.http.base_url} did not answer",
                                    why=type(exc).__name__ + (f": {exc}" if str(exc) else ""),
                                    next="check that the agent runs (GET /v1/health)") from None
        if resp.status_code >= 400:
            body = _json(resp)
            cls = getattr(errors, str(body.get("error")), None)
            if not (isinstance(cls, type) and issubclass(cls, errors.SkyliftError)):
                cls = errors.AgentError
            raise cls(body.get("what") or f"agent answered {resp.status_code} to {method} {path}",
                      why=body.get("why", ""), next=body.get("next", ""))
        return resp.json()

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
