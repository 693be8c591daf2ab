"""Adding, reconnecting and deleting hosts; the QEMU-per-cluster rule.

Adding a host asks its agent for its versions first: a host whose QEMU differs from its
cluster's is refused before anything is recorded, with a message that says to use a new
cluster. The first host of an empty cluster sets the cluster's QEMU. Then the connection
manager connects it (and upgrades its agent if need be).
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from skylift.agent.client import AsyncAgentClient
from skylift.agent.wire import agent_url
from skylift.db.models.infrastructure import Cluster, Host
from skylift.errors import OperationFailed, QemuMismatch, UsageError
from skylift.mn.api import mn_of
from skylift.mn.api.fields import HostAddress, Name, Uuid
from skylift.mn.api.rows import as_dict, delete_row, get_or_404, new_uuid, session
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1/hosts", tags=["hosts"])


class HostIn(BaseModel):
    name: Name
    cluster_uuid: Uuid
    # an IPv4 or IPv6 address only, never a host name or URL: the MN calls the agent there
    management_ip: HostAddress


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


def record_host(mn: MnState, body: HostIn, version: dict) -> dict:
    """Check the QEMU rule and record the host (status Connecting), in one transaction."""
    qemu = version.get("qemu") or ""
    with session(mn) as ses:
        cluster = ses.get(Cluster, body.cluster_uuid, with_for_update=True)
        if cluster is None:
            get_or_404(ses, Cluster, body.cluster_uuid)
        expected = cluster_qemu(ses, cluster)
        if expected and expected != qemu:
            raise QemuMismatch(
                f"host {body.name} runs QEMU {qemu}, cluster {cluster.name} runs QEMU {expected}",
                why="all hosts of a cluster must run the same QEMU version (live migration "
                    "between them depends on it)",
                next=f"create a new cluster for hosts with QEMU {qemu} and add the host there")
        if not cluster.qemu_version:
            cluster.qemu_version = expected or qemu
        host = Host(uuid=new_uuid(), zone_uuid=cluster.zone_uuid, cluster_uuid=cluster.uuid,
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


@router.post("", status_code=201)
async def add_host(body: HostIn, mn: MnState = Depends(mn_of)) -> dict:
    """Add a host: its agent's QEMU must match the cluster's; then it is connected."""
    manager = manager_of(mn)
    ip = body.management_ip
    url = agent_url(ip, manager.agent_port)
    async with AsyncAgentClient(url, manager.token, timeout=10.0, trust=manager.trust) as agent:
        version = await agent.version()
    if version.get("role") not in (None, "host"):
        raise UsageError(f"the agent at {body.management_ip} is a {version.get('role')} agent",
                         next="add hosts by the address of a host agent")
    host = await asyncio.to_thread(record_host, mn, body, version)
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
    return {"deleted": uuid}
