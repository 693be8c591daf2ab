"""Talking to the management node during an upgrade: settings, version, drain, handover.

The next MN is always started on the port the running one listens on before the running one
is stopped (SO_REUSEPORT handover), so API clients see "upgrade in progress", never a refused
connection. Which MN processes run is known by identity (upgrade.mn_instances), never by
asking the shared port.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import httpx

from skylift.db.engine import PASSWORD_ENV
from skylift.errors import OperationFailed
from skylift.mn.launch import MnHandle, MnStart, await_mn, mn_client, spawn_mn, wait_ready
from skylift.mn.settings import stored_value


class MnControl:
    """The MN at a URL, driven through its API and its process id."""

    def __init__(self, url: str, token: str, db_url: str, node_root: Path, home: Path,
                 db_password: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._db_password = db_password  # handed to the MNs it starts through their environment
        self.home = home  # the MN machine's state folder: the MNs started here use it
        self.token = token
        self.db_url = db_url  # without password: the MN reads it from the environment
        self.node_root = node_root
        parsed = urlparse(self.url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 8080
        # how the MNs it starts listen when the running one's command line says otherwise (an
        # HA MN: on 0.0.0.0, sharing the hosts): see launch_of
        self.launch: dict = {}
        # MNs started on standby by this process, by instance id: only this process can tell
        # one to serve (a standby left by a process that died is stopped, never adopted)
        self.standby: dict[str, MnStart] = {}

    def adopt_launch(self, launch: dict) -> None:
        """Start the next MNs as the running one was started (its listen address, agent port,
        TLS, host sharing), and find its listeners on that address."""
        self.launch = dict(launch)
        self.host = launch.get("host") or self.host

    def _call(self, method: str, path: str, **kw) -> dict:
        try:
            with mn_client(self.url, self.token, kw.pop("timeout", 10.0)) as client:
                resp = client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise OperationFailed(f"the management node at {self.url} does not answer",
                                  why=type(exc).__name__,
                                  next="start it, then run `skylift upgrade resume`") from None
        if resp.status_code >= 400:
            body = resp.json() if resp.headers.get("content-type", "").startswith(
                "application/json") else {"what": resp.text[:200]}
            raise OperationFailed(f"{method} {path} on the management node failed "
                                  f"(HTTP {resp.status_code})", why=str(body.get("what", "")),
                                  next=str(body.get("next", "")) or "read the MN log")
        return resp.json() if resp.content else {}

    def version(self) -> dict:
        return self._call("GET", "/v1/version")

    def get_setting(self, category: str, name: str) -> str | None:
        """What the cloud stores for a setting, as the MN reads it; None when it has none (so
        a step that puts a value back puts back nothing, not the default)."""
        body = self._call("GET", "/v1/global-settings")
        for item in body.get("settings", body if isinstance(body, list) else []):
            if item["category"] == category and item["name"] == name:
                return stored_value(item)
        return None

    def set_setting(self, category: str, name: str, value: str) -> None:
        self._call("PUT", f"/v1/global-settings/{category}/{name}", json={"value": value})

    def connections(self) -> dict:
        """Every agent-backed resource not Connected, with its reason (the MN's view)."""
        return self._call("GET", "/v1/connections")

    def converge(self, seconds: float | None = None) -> dict:
        """Ask the MN to retry every pending resource now, then on a short backoff."""
        query = f"?seconds={seconds:g}" if seconds else ""
        return self._call("POST", f"/v1/connections/converge{query}")

    def get(self, path: str) -> dict:
        return self._call("GET", path, timeout=60.0)

    def drain(self, wait: float = 30.0) -> dict:
        return self._call("POST", f"/v1/drain?wait={wait}", timeout=wait + 10)

    def start_next(self, *, maintenance: bool, slot: Path | None,
                   instance: str | None = None) -> MnHandle:
        """Start an MN on the same port (from a slot of installed software, else this code)."""
        return await_mn(self.spawn_next(maintenance=maintenance, slot=slot, instance=instance),
                        timeout=60.0)

    def spawn_next(self, *, maintenance: bool, slot: Path | None, instance: str | None = None,
                   standby: bool = False) -> MnStart:
        """start_next without waiting: the process, to be awaited (launch.await_mn)."""
        env = {"SKYLIFT_HOME": str(self.home)}
        if self._db_password is not None:
            env[PASSWORD_ENV] = self._db_password
        if slot is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(slot)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                               if p])
        launch = self.launch
        return spawn_mn(self.db_url, port=self.port, host=self.host, maintenance=maintenance,
                        env=env, node_root=self.node_root, instance=instance,
                        agent_port=launch.get("agent_port"), tls=launch.get("tls"),
                        share_hosts=bool(launch.get("share_hosts")),
                        reach_at=urlparse(self.url).hostname if launch else None,
                        standby=standby)

    def wait_ready(self, timeout: float = 60.0) -> dict:
        return wait_ready(self.url, timeout)


def launch_of(pid: int) -> dict:
    """How the MN process pid was started, from its command line: the options the MNs that
    replace it must keep (listen address, agent port, TLS, host sharing)."""
    from skylift.processes import cmdline

    argv = [a.decode(errors="replace") for a in cmdline(pid).split(b"\0") if a]

    def value(flag: str) -> str | None:
        return argv[argv.index(flag) + 1] if flag in argv[:-1] else None

    port = value("--agent-port")
    return {"host": value("--host"), "agent_port": int(port) if port else None,
            "tls": value("--tls"), "share_hosts": "--share-hosts" in argv}
