"""VM instances: create, delete, start, stop, reboot, migrate — through the agent of the
VM's host, and only while that host is Connected (else "reconnecting, retry later").

The hypervisor acts first and the inventory follows, so a failed agent call changes nothing;
a database failure after the agent acted is undone on the agent. A VM (and its root volume)
belongs to the account that created it, or that the admin named; an account's token reaches
only its own VMs (another's is a 404, see skylift.mn.api.owners).
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from skylift.db.models.compute import (Image, InstanceOffering, VmInstance, VmNic, Volume,
                                       VolumeSnapshot)
from skylift.db.models.infrastructure import Host, PrimaryStorage, PrimaryStorageClusterRef
from skylift.db.models.network import Eip, VmNicSecurityGroupRef
from skylift.errors import NoSuchVm, Refused, UsageError
from skylift.mn.access import Caller
from skylift.mn.access import caller_of
from skylift.mn.api import mn_of
from skylift.mn.api.fields import Name, Uuid
from skylift.mn.api.owners import (forget_owner, owner_for_new, path_owner_check,
                                   record_owner)
from skylift.mn.api.rows import as_dict, get_or_404, new_uuid, session
from skylift.mn.api.hosts import manager_of
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1/vm_instances", tags=["vms"],
                   dependencies=[Depends(path_owner_check("vm_instances"))])
ACTIONS = {"start": "Running", "stop": "Stopped", "reboot": "Running"}


class VmIn(BaseModel):
    name: Name
    host_uuid: Uuid
    instance_offering_uuid: Uuid | None = None
    image_uuid: Uuid | None = None
    ps_uuid: Uuid | None = None  # where the root volume goes (default: a PS of the cluster)
    ha: bool = False
    start: bool = True
    account_uuid: Uuid | None = None  # the owner (admin only; default: the caller's account)


class MigrateIn(BaseModel):
    host_uuid: Uuid


def _plan_vm(mn: MnState, body: VmIn, caller: Caller) -> dict:
    """Check the references of a new VM; its owner, host, sizes and root volume's storage."""
    with session(mn) as ses:
        owner = owner_for_new(ses, caller, body.account_uuid)
        host = get_or_404(ses, Host, body.host_uuid)
        cpu, memory = 1, 1 << 30
        if body.instance_offering_uuid:
            offering = get_or_404(ses, InstanceOffering, body.instance_offering_uuid)
            cpu, memory = offering.cpu_num, offering.memory_size
        size = 10 << 30
        if body.image_uuid:
            size = get_or_404(ses, Image, body.image_uuid).size or size
        ps_uuid = body.ps_uuid
        if ps_uuid:
            get_or_404(ses, PrimaryStorage, ps_uuid)
        else:
            ps_uuid = ses.scalars(sa.select(PrimaryStorageClusterRef.ps_uuid).where(
                PrimaryStorageClusterRef.cluster_uuid == host.cluster_uuid).limit(1)).first()
        return {"host": as_dict(host), "cpu": cpu, "memory": memory, "size": size,
                "ps_uuid": ps_uuid, "owner": owner}


def _record_vm(mn: MnState, uuid: str, body: VmIn, plan: dict, state: str) -> dict:
    host = plan["host"]
    with session(mn) as ses:
        vm = VmInstance(uuid=uuid, name=body.name, zone_uuid=host["zone_uuid"],
                        cluster_uuid=host["cluster_uuid"], host_uuid=host["uuid"],
                        last_host_uuid=host["uuid"], image_uuid=body.image_uuid,
                        instance_offering_uuid=body.instance_offering_uuid, state=state,
                        ha_level="NeverStop" if body.ha else None, type="UserVm",
                        cpu_num=plan["cpu"], memory_size=plan["memory"], platform="Linux")
        ses.add(vm)
        record_owner(ses, "vm_instances", uuid, plan["owner"])
        ses.flush()
        if plan["ps_uuid"]:
            root = Volume(uuid=new_uuid(), name=f"ROOT-for-{body.name}", vm_uuid=uuid,
                          ps_uuid=plan["ps_uuid"], type="Root", format="qcow2",
                          size=plan["size"], is_shareable=False, state="Enabled",
                          status="Ready", install_path=f"volumes/{uuid}/root.qcow2")
            ses.add(root)
            record_owner(ses, "volumes", root.uuid, plan["owner"])
            ses.flush()
            vm.root_volume_uuid = root.uuid
        return as_dict(vm)


def _row(mn: MnState, cls: type, uuid: str) -> dict:
    with session(mn) as ses:
        return as_dict(get_or_404(ses, cls, uuid))


def _vm_and_host(mn: MnState, uuid: str) -> tuple[dict, str]:
    with session(mn) as ses:
        vm = as_dict(get_or_404(ses, VmInstance, uuid))
    if not vm["host_uuid"]:
        raise Refused(f"VM {vm['name']} has no host", why="it is stopped and unplaced",
                      next="migrate it to a host or create it again")
    return vm, vm["host_uuid"]


def _set(mn: MnState, uuid: str, **values) -> dict:
    with session(mn) as ses:
        vm = get_or_404(ses, VmInstance, uuid)
        for key, value in values.items():
            setattr(vm, key, value)
        ses.flush()
        return as_dict(vm)


def _deletable(mn: MnState, uuid: str) -> dict:
    """The VM, if it may be deleted: its root volume must have no snapshots (checked before
    the hypervisor is asked to destroy it)."""
    with session(mn) as ses:
        vm = get_or_404(ses, VmInstance, uuid)
        snapshots = ses.execute(
            sa.select(sa.func.count()).select_from(VolumeSnapshot).join(
                Volume, Volume.uuid == VolumeSnapshot.volume_uuid)
            .where(Volume.vm_uuid == uuid, Volume.type == "Root")).scalar_one()
        if snapshots:
            raise Refused(f"VM {vm.name}'s root volume has {snapshots} snapshots",
                          why="deleting the VM deletes its root volume",
                          next="delete the snapshots first")
        return as_dict(vm)


def _forget_vm(mn: MnState, uuid: str) -> None:
    """Remove a VM from the inventory: NICs (and what uses them), root volume; data volumes
    are detached and kept."""
    with session(mn) as ses:
        vm = get_or_404(ses, VmInstance, uuid)
        nics = list(ses.scalars(sa.select(VmNic.uuid).where(VmNic.vm_uuid == uuid)))
        if nics:
            ses.execute(sa.update(Eip).where(Eip.vm_nic_uuid.in_(nics)).values(vm_nic_uuid=None))
            ses.execute(sa.delete(VmNicSecurityGroupRef).where(
                VmNicSecurityGroupRef.nic_uuid.in_(nics)))
            ses.execute(sa.delete(VmNic).where(VmNic.uuid.in_(nics)))
        ses.execute(sa.update(Volume).where(Volume.vm_uuid == uuid, Volume.type != "Root")
                    .values(vm_uuid=None))
        vm.root_volume_uuid = None
        ses.flush()
        roots = list(ses.scalars(sa.select(Volume).where(Volume.vm_uuid == uuid)))
        for root in roots:
            ses.delete(root)
        forget_owner(ses, "volumes", [root.uuid for root in roots])
        forget_owner(ses, "vm_instances", [uuid])
        ses.flush()
        ses.delete(vm)


@router.post("", status_code=201)
async def create_vm(body: VmIn, request: Request, mn: MnState = Depends(mn_of)) -> dict:
    """Create (and by default start) a VM on a Connected host, owned by the caller's account
    (the admin may name another in account_uuid)."""
    manager = manager_of(mn)
    plan = await asyncio.to_thread(_plan_vm, mn, body, caller_of(request))
    manager.require_connected(body.host_uuid)
    uuid = new_uuid()
    agent = manager.agent(body.host_uuid)
    reply = await agent.create_vm(uuid, body.name, ha=body.ha, start=body.start)
    try:
        vm = await asyncio.to_thread(_record_vm, mn, uuid, body, plan,
                                     reply.get("state") or ("Running" if body.start else "Stopped"))
    except BaseException:
        await agent.destroy_vm(uuid)  # the inventory did not take it: undo on the hypervisor
        raise
    vm["boot_id"] = reply.get("boot_id")
    return vm


@router.post("/{uuid}/migrate")
async def migrate_vm(uuid: str, body: MigrateIn, mn: MnState = Depends(mn_of)) -> dict:
    """Move a VM to another Connected host of its cluster (one QEMU version per cluster)."""
    manager = manager_of(mn)
    vm, source = await asyncio.to_thread(_vm_and_host, mn, uuid)
    if body.host_uuid == source:
        raise UsageError(f"VM {vm['name']} already runs on that host",
                         next="pick another host of its cluster")
    target = await asyncio.to_thread(_row, mn, Host, body.host_uuid)
    if target["cluster_uuid"] != vm["cluster_uuid"]:
        raise Refused(f"host {target['name']} is in another cluster than VM {vm['name']}",
                      why="VMs migrate within their cluster, whose hosts share one QEMU version",
                      next="pick a host of the VM's cluster")
    manager.require_connected(source)
    manager.require_connected(body.host_uuid)
    src, dst = manager.agent(source), manager.agent(body.host_uuid)
    running = vm["state"] == "Running"
    reply = await dst.create_vm(uuid, vm["name"], ha=vm["ha_level"] == "NeverStop",
                                start=running)
    try:
        await src.destroy_vm(uuid)
    except NoSuchVm:
        pass
    out = await asyncio.to_thread(_set, mn, uuid, host_uuid=body.host_uuid,
                                  last_host_uuid=source)
    out["boot_id"] = reply.get("boot_id")
    return out


@router.post("/{uuid}/{action}")
async def vm_action(uuid: str, action: str, mn: MnState = Depends(mn_of)) -> dict:
    """start, stop or reboot a VM (its host must be Connected)."""
    if action not in ACTIONS:
        raise UsageError(f"unknown VM action '{action}'",
                         next="use start, stop, reboot, or POST .../migrate")
    manager = manager_of(mn)
    vm, host_uuid = await asyncio.to_thread(_vm_and_host, mn, uuid)
    manager.require_connected(host_uuid)
    reply = await manager.agent(host_uuid).vm_action(uuid, action)
    out = await asyncio.to_thread(_set, mn, uuid, state=reply.get("state") or ACTIONS[action])
    out["boot_id"] = reply.get("boot_id")
    return out


@router.delete("/{uuid}")
async def delete_vm(uuid: str, mn: MnState = Depends(mn_of)) -> dict:
    """Destroy a VM on its host and remove it (data volumes are detached and kept)."""
    manager = manager_of(mn)
    vm = await asyncio.to_thread(_deletable, mn, uuid)
    if vm["host_uuid"]:
        manager.require_connected(vm["host_uuid"])
        try:
            await manager.agent(vm["host_uuid"]).destroy_vm(uuid)
        except NoSuchVm:
            pass
    await asyncio.to_thread(_forget_vm, mn, uuid)
    return {"deleted": uuid}
