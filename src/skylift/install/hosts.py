"""`skylift host add` and `host remove` on the MN machine.

An MN serving its API (normal mode) does the work itself: `POST /v1/hosts` with the SSH
credentials deploys the agent, records the host and connects it. An MN in maintenance mode (a
cloud of an older release than the MN's code) records no hosts: there, a host the inventory
already names (its record came with the cloud's database) is deployed from this command over
the same code path (skylift.mn.host_add), and the upgrade's reconnect takes it from there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import sqlalchemy as sa

from skylift import errors
from skylift.config import load_config, skylift_home
from skylift.db.engine import PASSWORD_ENV, Database
from skylift.errors import OperationFailed, Refused, SkyliftError
from skylift.lineage import ships_agent_tls
from skylift.mn.agent_upgrade import DEFAULT_NODE_ROOT, RepoCatalog
from skylift.mn.auth import token_path
from skylift.mn.host_add import add_over_ssh, repo_ca, repo_url_for
from skylift.mn.host_deploy import DeploySpec, HostLogin
from skylift.mn.launch import mn_client
from skylift.pki.trust import AgentTrust
from skylift.secrets import read_secret


@dataclass
class HostAddRequest:
    """What the operator gave `skylift host add`; the password was read from a file or the
    environment (never the command line) and is never shown."""

    address: str
    name: str | None = None
    cluster_uuid: str | None = None
    user: str = "root"
    port: int = 22
    key_path: Path | None = None
    password: str | None = field(default=None, repr=False)
    host_key_fingerprint: str | None = None
    node_root: str = DEFAULT_NODE_ROOT
    driver: str = "process"
    repo_url: str | None = None

    def ssh_body(self) -> dict:
        body = {"user": self.user, "port": self.port,
                "key_path": str(self.key_path) if self.key_path else None,
                "host_key_fingerprint": self.host_key_fingerprint}
        if self.password is not None:
            body["password"] = self.password
        return body


def _mn(home: Path) -> tuple[str, str | None, dict]:
    """The MN's URL, its admin token, and its version document."""
    url = load_config(home).management_node_url()
    tok = token_path(home)
    token = tok.read_text().strip() if tok.exists() else None
    try:
        with mn_client(url, token, 10.0, home=home) as client:
            return url, token, client.get("/v1/version").raise_for_status().json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OperationFailed(f"no management node answers at {url}",
                              why=type(exc).__name__ + (f": {exc}" if str(exc) else ""),
                              next="start it (`skylift install` starts it), or fix mn_url in "
                                   "config.toml") from None


def _api_error(resp: httpx.Response) -> SkyliftError:
    """The MN's error answer as the error type it names (exit code included)."""
    try:
        data = resp.json()
    except ValueError:
        data = {}
    kind = getattr(errors, str(data.get("error")), None)
    cls = kind if isinstance(kind, type) and issubclass(kind, SkyliftError) else (
        Refused if 400 <= resp.status_code < 500 else OperationFailed)
    return cls(data.get("what") or f"the MN answered {resp.status_code}",
               why=data.get("why", ""), next=data.get("next", ""))


def add_host(req: HostAddRequest, *, home: Path | None = None,
             on_step: Callable[[str], None] = lambda msg: None) -> dict:
    """Add one host over SSH; returns the host as recorded, with its agent's code.

    A new address is added by the MN (`POST /v1/hosts`: deploy, record, connect). An address
    the inventory already names, whose agent does not answer (a deployment that failed
    half-way, a reinstalled node, a cloud of an older release), is deployed from here and
    then reconnected; one whose agent answers is refused as added already."""
    home = home or skylift_home()
    url, token, version = _mn(home)
    cfg = load_config(home)
    db = Database.from_string(cfg.default_db_url(),
                              read_secret(file=None, env_var=PASSWORD_ENV, prompt=None))
    host, agent_port = _inventory_host(db, req.address)
    normal = version.get("mode") == "normal"
    if host is None and not normal:
        raise Refused(f"the management node runs release {version.get('release')} in "
                      f"{version.get('mode')} mode and cannot record the new host "
                      f"{req.address}",
                      why="an MN older than its code serves no API but health and version; "
                          "only hosts its inventory already names can be deployed now",
                      next="upgrade the cloud first (`skylift upgrade run`), then add the host")
    if host is None:
        return _add_new(req, home, url, token, on_step)
    done = _deploy_recorded(req, home, host, agent_port, version, url, on_step)
    if normal:
        with mn_client(url, token, 120.0, home=home) as client:
            resp = client.post(f"/v1/hosts/{host['uuid']}/reconnect")
        if resp.status_code >= 400:
            raise _api_error(resp)
        done["status"] = resp.json().get("status")
    return done


def _add_new(req: HostAddRequest, home: Path, url: str, token: str | None,
             on_step: Callable[[str], None]) -> dict:
    if not (req.name and req.cluster_uuid):
        raise errors.UsageError(f"{req.address} is a new host: it needs --name and --cluster",
                                next="give the host's name and its cluster's uuid")
    on_step(f"the management node at {url} deploys and connects {req.address}")
    body = {"name": req.name, "cluster_uuid": req.cluster_uuid,
            "management_ip": req.address, "ssh": req.ssh_body(),
            "node_root": req.node_root, "driver": req.driver}
    if req.repo_url:
        body["repo_url"] = req.repo_url
    with mn_client(url, token, 300.0, home=home) as client:
        resp = client.post("/v1/hosts", json=body)
    if resp.status_code >= 400:
        raise _api_error(resp)
    return resp.json()


def _inventory_host(db: Database, address: str) -> tuple[dict | None, int]:
    eng = db.engine()
    try:
        with eng.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT uuid, name, cluster_uuid, qemu_version FROM hosts "
                "WHERE management_ip = :a"), {"a": address}).first()
            port = conn.execute(sa.text(
                "SELECT value FROM global_settings WHERE category = 'host' "
                "AND name = 'agentPort'")).scalar()
    finally:
        eng.dispose()
    return (dict(row._mapping) if row else None), int(port or 7070)


def _deploy_recorded(req: HostAddRequest, home: Path, host: dict, agent_port: int,
                     version: dict, url: str, on_step: Callable[[str], None]) -> dict:
    release = version.get("release") or ""
    cfg = load_config(home)
    repo_url = req.repo_url or repo_url_for(url, req.address)
    login = HostLogin(req.address, req.port, req.user, key_path=req.key_path,
                      password=req.password, host_key_fingerprint=req.host_key_fingerprint)
    spec = DeploySpec(login, host["uuid"], agent_port, repo_url, repo_ca(home, repo_url),
                      node_root=req.node_root, driver=req.driver)

    def check_facts(facts) -> None:
        if facts.qemu and host["qemu_version"] and facts.qemu != host["qemu_version"]:
            raise errors.QemuMismatch(
                f"host {host['name']} runs QEMU {facts.qemu}, the inventory records "
                f"{host['qemu_version']}",
                why="the node at this address is not the host the inventory names",
                next="check the address, or reinstall the host with its recorded QEMU")

    tls = ships_agent_tls(release) if release else True
    trust = AgentTrust.of_home(home) if tls else AgentTrust.existing(home)
    result = asyncio.run(add_over_ssh(
        home, spec, name=host["name"], catalog=RepoCatalog(cfg.management_node_root()),
        trust=trust, tls=tls, check_facts=check_facts, on_step=on_step))
    return {"uuid": host["uuid"], "name": host["name"], "management_ip": req.address,
            "status": "deployed", "release": release, "os_release": result.facts.os_release,
            "agent_version": result.agent.get("agent_version"),
            "code": result.agent.get("code")}


def remove_host(uuid: str, *, home: Path | None = None) -> dict:
    """Remove a host (without VMs) through the MN's API; the MN forgets how to reach it."""
    home = home or skylift_home()
    url, token, version = _mn(home)
    if version.get("mode") != "normal":
        raise Refused(f"the management node runs in {version.get('mode')} mode",
                      why="hosts are removed by the MN serving its API",
                      next="wait for the upgrade to finish, then remove the host")
    with mn_client(url, token, 60.0, home=home) as client:
        resp = client.delete(f"/v1/hosts/{uuid}")
    if resp.status_code >= 400:
        raise _api_error(resp)
    return resp.json()
