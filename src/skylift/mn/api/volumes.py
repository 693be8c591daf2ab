"""Data volumes: create, attach to a VM, detach, delete. Attach and detach go through the
agent of the VM's host, and only while it is Connected.

Shared volumes are created in raw format (since 3.2.0): no snapshot, no resize. A volume
belongs to the account that created it (or that the admin named); an account's token reaches
only its own volumes, and attaches them only to its own VMs (another's is a 404).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from skylift.db.models.compute import DiskOffering, VmInstance, Volume
from skylift.db.models.infrastructure import PrimaryStorage
from skylift.errors import Refused
from skylift.mn.access import Caller
from skylift.mn.access import caller_of
from skylift.mn.api import mn_of
from skylift.mn.api.fields import INT64_MAX, Name, Uuid
from skylift.mn.api.owners import owner_for_new, path_owner_check, record_owner, require_owned
from skylift.mn.api.rows import as_dict, delete_row, get_or_404, new_uuid, session
from skylift.mn.api.hosts import manager_of
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1/volumes", tags=["volumes"],
                   dependencies=[Depends(path_owner_check("volumes"))])


class VolumeIn(BaseModel):
    name: Name
    ps_uuid: Uuid
    size: int | None = Field(default=None, ge=1 << 20, le=INT64_MAX)
    disk_offering_uuid: Uuid | None = None
    shareable: bool = False
    account_uuid: Uuid | None = None  # the owner (admin only; default: the caller's account)


class AttachIn(BaseModel):
    vm_uuid: Uuid


def _create(mn: MnState, body: VolumeIn, caller: Caller) -> dict:
    with session(mn) as ses:
        owner = owner_for_new(ses, caller, body.account_uuid)
        get_or_404(ses, PrimaryStorage, body.ps_uuid)
        size = body.size
        if body.disk_offering_uuid:
            size = size or get_or_404(ses, DiskOffering, body.disk_offering_uuid).disk_size
        if not size:
            raise Refused("a data volume needs a size", next="pass size or disk_offering_uuid")
        fmt = "raw" if body.shareable else "qcow2"
        vol = Volume(uuid=new_uuid(), name=body.name, vm_uuid=None, ps_uuid=body.ps_uuid,
                     disk_offering_uuid=body.disk_offering_uuid, type="Data", format=fmt,
                     size=size, is_shareable=body.shareable, state="Enabled", status="Ready",
                     install_path=f"volumes/data/{body.name}.{fmt}")
        ses.add(vol)
        record_owner(ses, "volumes", vol.uuid, owner)
        ses.flush()
        return as_dict(vol)


def _volume_and_vm(mn: MnState, uuid: str, vm_uuid: str | None,
                   caller: Caller | None = None) -> tuple[dict, dict | None]:
    with session(mn) as ses:
        vol = as_dict(get_or_404(ses, Volume, uuid))
        if vm_uuid and caller is not None:
            require_owned(ses, caller, "vm_instances", vm_uuid)  # attach only to one's own VM
        vm_uuid = vm_uuid or vol["vm_uuid"]
        vm = as_dict(get_or_404(ses, VmInstance, vm_uuid)) if vm_uuid else None
    if vol["type"] == "Root":
        raise Refused(f"volume {vol['name']} is a root volume",
                      why="a root volume belongs to its VM", next="work on a data volume")
    return vol, vm


def _set_vm(mn: MnState, uuid: str, vm_uuid: str | None) -> dict:
    with session(mn) as ses:
        vol = get_or_404(ses, Volume, uuid)
        vol.vm_uuid = vm_uuid
        ses.flush()
        return as_dict(vol)


def _delete(mn: MnState, uuid: str) -> None:
    with session(mn) as ses:
        vol = get_or_404(ses, Volume, uuid)
        if vol.vm_uuid:
            raise Refused(f"volume {vol.name} is attached to VM {vol.vm_uuid}",
                          why="deleting it would pull a disk from the VM", next="detach it first")
        delete_row(ses, Volume, uuid)


@router.post("", status_code=201)
async def create_volume(body: VolumeIn, request: Request,
                        mn: MnState = Depends(mn_of)) -> dict:
    """Create a data volume on a primary storage (raw when shareable), owned by the caller's
    account (the admin may name another in account_uuid)."""
    return await asyncio.to_thread(_create, mn, body, caller_of(request))


@router.post("/{uuid}/attach")
async def attach_volume(uuid: str, body: AttachIn, request: Request,
                        mn: MnState = Depends(mn_of)) -> dict:
    """Attach a data volume to a VM, on the VM's host."""
    manager = manager_of(mn)
    vol, vm = await asyncio.to_thread(_volume_and_vm, mn, uuid, body.vm_uuid,
                                      caller_of(request))
    if vol["vm_uuid"] not in (None, vm["uuid"]) and not vol["is_shareable"]:
        raise Refused(f"volume {vol['name']} is attached to VM {vol['vm_uuid']}",
                      why="a non-shared volume attaches to one VM at a time",
                      next="detach it first")
    if not vm["host_uuid"]:
        raise Refused(f"VM {vm['name']} has no host", next="start the VM first")
    manager.require_connected(vm["host_uuid"])
    agent = manager.agent(vm["host_uuid"])
    await agent.volume("create", uuid, size=vol["size"], format=vol["format"],
                       shared=vol["is_shareable"])
    await agent.volume("attach", uuid, vm_uuid=vm["uuid"])
    return await asyncio.to_thread(_set_vm, mn, uuid, vm["uuid"])


@router.post("/{uuid}/detach")
async def detach_volume(uuid: str, mn: MnState = Depends(mn_of)) -> dict:
    """Detach a data volume from its VM, on the VM's host."""
    manager = manager_of(mn)
    vol, vm = await asyncio.to_thread(_volume_and_vm, mn, uuid, None)
    if vm is None:
        return vol  # already detached
    if vm["host_uuid"]:
        manager.require_connected(vm["host_uuid"])
        await manager.agent(vm["host_uuid"]).volume("detach", uuid)
    return await asyncio.to_thread(_set_vm, mn, uuid, None)


@router.delete("/{uuid}")
async def delete_volume(uuid: str, mn: MnState = Depends(mn_of)) -> dict:
    """Delete a detached data volume."""
    await asyncio.to_thread(_delete, mn, uuid)
    return {"deleted": uuid}
