"""Adding, reconnecting and deleting hosts; the QEMU-per-cluster rule.

Adding a host asks its agent for its versions first: a host whose QEMU differs from its
cluster's is refused before anything is recorded, with a message that says to use a new
cluster. The first host of an empty cluster sets the cluster's QEMU. Then the connection
manager connects it (and upgrades its agent if need be).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, SecretStr

from skylift.agent.client import AsyncAgentClient
from skylift.agent.wire import agent_url
from skylift.db.models.infrastructure import Cluster, Host
from skylift.errors import OperationFailed, QemuMismatch, Refused, UsageError
from skylift.mn.agent_upgrade import DEFAULT_NODE_ROOT
from skylift.mn.api import mn_of
from skylift.mn.api.fields import HostAddress, Name, Uuid
from skylift.mn.api.rows import as_dict, delete_row, get_or_404, new_uuid, session
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1/hosts", tags=["hosts"])


class SshIn(BaseModel):
    """How the MN logs in to deploy the agent: a key file on the MN machine, or a password
    (sent in the body, never stored: the MN authorizes its own key on the host)."""

    user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")] = "root"
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    key_path: Annotated[str, Field(max_length=4096, pattern=r"^/[^\x00]*$")] | None = None
    password: SecretStr | None = None
    host_key_fingerprint: Annotated[str, Field(max_length=128)] | None = None


class HostIn(BaseModel):
    name: Name
    cluster_uuid: Uuid
    # an IPv4 or IPv6 address only, never a host name or URL: the MN calls the agent there
    management_ip: HostAddress
    # given: the MN deploys the agent over SSH first (skylift.mn.host_add); absent: the
    # host's agent already runs
    ssh: SshIn | None = None
    node_root: Annotated[str, Field(max_length=1024, pattern=r"^/[A-Za-z0-9._/-]*$")] = \
        DEFAULT_NODE_ROOT
    driver: Literal["process", "sim"] = "process"
    # the MN's repository as the host reaches it (default: the MN's URL in config.toml)
    repo_url: Annotated[str, Field(max_length=1024, pattern=r"^https?://[^\s]+$")] | None = None


def manager_of(mn: MnState):
    """The connection manager; hosts cannot be added or driven without one."""
    if mn.manager is None:
        raise OperationFailed("this management node has no connection manager",
                              why="it runs without one (maintenance mode or a partial build)",
                              next="run the management node of the full release")
    return mn.manager


def cluster_qemu(ses, cluster: Cluster) -> str | None:
    """The QEMU a cluster runs: its recorded one, else that of the hosts it already has."""
    if cluster.qemu_version:
        return cluster.qemu_version
    return ses.scalars(sa.select(Host.qemu_version).where(
        Host.cluster_uuid == cluster.uuid).limit(1)).first()


def check_qemu(name: str, qemu: str, cluster: Cluster, expected: str | None) -> None:
    """All hosts of a cluster run the same QEMU."""
    if expected and expected != qemu:
        raise QemuMismatch(
            f"host {name} runs QEMU {qemu}, cluster {cluster.name} runs QEMU {expected}",
            why="all hosts of a cluster must run the same QEMU version (live migration "
                "between them depends on it)",
            next=f"create a new cluster for hosts with QEMU {qemu} and add the host there")


def check_new(ses, body: HostIn) -> Cluster:
    """The host's cluster; refused when a host of this address is recorded already."""
    cluster = ses.get(Cluster, body.cluster_uuid)
    if cluster is None:
        get_or_404(ses, Cluster, body.cluster_uuid)
    same = ses.scalars(sa.select(Host).where(Host.management_ip == body.management_ip)).first()
    if same is not None:
        raise Refused(f"host {body.management_ip} is already added (as {same.name}, "
                      f"{same.uuid})", why="a host is added once",
                      next=f"remove it first (`skylift host remove {same.uuid}`), or "
                           f"reconnect it (POST /v1/hosts/{same.uuid}/reconnect)")
    return cluster


def record_host(mn: MnState, body: HostIn, version: dict, uuid: str | None = None) -> dict:
    """Check the QEMU rule and record the host (status Connecting), in one transaction."""
    qemu = version.get("qemu") or ""
    with session(mn) as ses:
        check_new(ses, body)
        cluster = ses.get(Cluster, body.cluster_uuid, with_for_update=True)
        expected = cluster_qemu(ses, cluster)
        check_qemu(body.name, qemu, cluster, expected)
        if not cluster.qemu_version:
            cluster.qemu_version = expected or qemu
        host = Host(uuid=uuid or new_uuid(), zone_uuid=cluster.zone_uuid,
                    cluster_uuid=cluster.uuid,
                    name=body.name, management_ip=body.management_ip, state="Enabled",
                    status="Connecting", os_release=version.get("os_release") or "",
                    qemu_version=qemu, libvirt_version=version.get("libvirt") or "",
                    agent_version=version.get("agent_version") or "")
        ses.add(host)
        ses.flush()
        return as_dict(host)


def forget_host(mn: MnState, uuid: str) -> None:
    """Remove a host that did not connect; an emptied cluster loses its QEMU again."""
    with session(mn) as ses:
        host = ses.get(Host, uuid)
        if host is None:
            return
        cluster_uuid = host.cluster_uuid
        ses.delete(host)
        ses.flush()
        _reset_empty_cluster(ses, cluster_uuid)


def _reset_empty_cluster(ses, cluster_uuid: str) -> None:
    left = ses.execute(sa.select(sa.func.count()).select_from(Host).where(
        Host.cluster_uuid == cluster_uuid)).scalar_one()
    if not left:
        ses.execute(sa.update(Cluster).where(Cluster.uuid == cluster_uuid)
                    .values(qemu_version=None))


async def deploy_over_ssh(mn: MnState, body: HostIn, uuid: str) -> dict:
    """Deploy the host's agent over SSH (checks first: OS release, QEMU of the cluster, not
    added yet); returns the agent's version document."""
    from skylift.config import load_config, skylift_home
    from skylift.mn.host_add import add_over_ssh, repo_ca, repo_url_for
    from skylift.mn.host_deploy import DeploySpec, HostLogin

    manager = manager_of(mn)
    with session(mn) as ses:
        cluster = check_new(ses, body)
        expected = cluster_qemu(ses, cluster)

    def check_facts(facts) -> None:
        if facts.qemu:
            check_qemu(body.name, facts.qemu, cluster, expected)

    ssh = body.ssh
    home = skylift_home()
    repo_url = body.repo_url or repo_url_for(load_config().management_node_url(),
                                             body.management_ip)
    login = HostLogin(body.management_ip, ssh.port, ssh.user,
                      key_path=Path(ssh.key_path) if ssh.key_path else None,
                      password=ssh.password.get_secret_value() if ssh.password else None,
                      host_key_fingerprint=ssh.host_key_fingerprint)
    spec = DeploySpec(login, uuid, manager.agent_port, repo_url, repo_ca(home, repo_url),
                      node_root=body.node_root, driver=body.driver)
    result = await add_over_ssh(home, spec, name=body.name, catalog=manager.catalog,
                                trust=manager.trust, tls=manager.trust is not None,
                                check_facts=check_facts)
    return result.agent


@router.post("", status_code=201)
async def add_host(body: HostIn, mn: MnState = Depends(mn_of)) -> dict:
    """Add a host: with `ssh`, deploy its agent first; its QEMU must match the cluster's;
    then it is connected."""
    manager = manager_of(mn)
    uuid = new_uuid()
    if body.ssh is not None:
        version = await deploy_over_ssh(mn, body, uuid)
    else:
        url = agent_url(body.management_ip, manager.agent_port)
        async with AsyncAgentClient(url, manager.token, timeout=10.0,
                                    trust=manager.trust) as agent:
            version = await agent.version()
    if version.get("role") not in (None, "host"):
        raise UsageError(f"the agent at {body.management_ip} is a {version.get('role')} agent",
                         next="add hosts by the address of a host agent")
    host = await asyncio.to_thread(record_host, mn, body, version, uuid)
    try:
        reply = await manager.connect_host(host["uuid"])
    except BaseException:
        await asyncio.to_thread(forget_host, mn, host["uuid"])
        raise
    host.update(status=manager.state(host["uuid"]),
                agent_version=reply.get("agent_version", host["agent_version"]))
    return host


@router.post("/{uuid}/reconnect")
async def reconnect_host(uuid: str, mn: MnState = Depends(mn_of)) -> dict:
    """Reconnect a host now; answers its agent's version and the connection state."""
    manager = manager_of(mn)
    with session(mn) as ses:
        get_or_404(ses, Host, uuid)
    reply = await manager.connect_host(uuid)
    return {"uuid": uuid, "status": manager.state(uuid), "agent": reply}


@router.get("/{uuid}/connection")
def host_connection(uuid: str, mn: MnState = Depends(mn_of)) -> dict:
    """The host's connection state as the manager sees it now (the table lags a little)."""
    return {"uuid": uuid, "status": manager_of(mn).state(uuid)}


@router.delete("/{uuid}")
def delete_host(uuid: str, mn: MnState = Depends(mn_of)) -> dict:
    """Delete a host without VMs; the last host of a cluster frees the cluster's QEMU."""
    with session(mn) as ses:
        host = get_or_404(ses, Host, uuid)
        cluster_uuid = host.cluster_uuid
        delete_row(ses, Host, uuid)
        ses.flush()
        _reset_empty_cluster(ses, cluster_uuid)
    from skylift.config import skylift_home
    from skylift.mn.nodes import registry_path, unregister_node

    # a host added again later is deployed afresh; until then the MN no longer reaches it
    unregister_node(registry_path(skylift_home()), uuid)
    return {"deleted": uuid}
