"""Creating and deleting zones, clusters, primary and backup storages."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from skylift.db.models.infrastructure import (BackupStorage, BackupStorageZoneRef, Cluster,
                                              PrimaryStorage, PrimaryStorageClusterRef, Zone)
from skylift.mn.api import mn_of
from skylift.mn.api.fields import MAX_REFS, Description, Kind, Name, Short, Size, Url, Uuid
from skylift.mn.api.rows import add_delete_route, as_dict, get_or_404, new_uuid, session
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1", tags=["infrastructure"])


class ZoneIn(BaseModel):
    name: Name
    description: Description | None = None


class ClusterIn(BaseModel):
    name: Name
    zone_uuid: Uuid
    hypervisor_type: Short = "KVM"


class PrimaryStorageIn(BaseModel):
    name: Name
    zone_uuid: Uuid
    type: Kind = "LocalStorage"
    url: Url = "/var/lib/skylift/ps"
    total_capacity: Size = 1 << 40
    cluster_uuids: list[Uuid] = Field(default=[], max_length=MAX_REFS)
    ceph_cephx: bool = False


class BackupStorageIn(BaseModel):
    name: Name
    type: Kind = "ImageStoreBackupStorage"
    url: Url = "/var/lib/skylift/bs"
    total_capacity: Size = 1 << 40
    zone_uuids: list[Uuid] = Field(default=[], max_length=MAX_REFS)


@router.post("/zones", status_code=201)
def create_zone(body: ZoneIn, mn: MnState = Depends(mn_of)) -> dict:
    """Create a zone."""
    with session(mn) as ses:
        zone = Zone(uuid=new_uuid(), name=body.name, description=body.description,
                    state="Enabled")
        ses.add(zone)
        ses.flush()
        return as_dict(zone)


@router.post("/clusters", status_code=201)
def create_cluster(body: ClusterIn, mn: MnState = Depends(mn_of)) -> dict:
    """Create a cluster in a zone; its QEMU version is set by the first host that joins."""
    with session(mn) as ses:
        get_or_404(ses, Zone, body.zone_uuid)
        cluster = Cluster(uuid=new_uuid(), zone_uuid=body.zone_uuid, name=body.name,
                          hypervisor_type=body.hypervisor_type, state="Enabled",
                          qemu_version=None)
        ses.add(cluster)
        ses.flush()
        return as_dict(cluster)


@router.post("/primary_storages", status_code=201)
def create_primary_storage(body: PrimaryStorageIn, mn: MnState = Depends(mn_of)) -> dict:
    """Add a primary storage to a zone, attached to the clusters named."""
    with session(mn) as ses:
        get_or_404(ses, Zone, body.zone_uuid)
        ps = PrimaryStorage(uuid=new_uuid(), zone_uuid=body.zone_uuid, name=body.name,
                            type=body.type, url=body.url, total_capacity=body.total_capacity,
                            available_capacity=body.total_capacity, status="Connected",
                            ceph_cephx=body.ceph_cephx)
        ses.add(ps)
        ses.flush()
        for cluster_uuid in body.cluster_uuids:
            get_or_404(ses, Cluster, cluster_uuid)
            ses.add(PrimaryStorageClusterRef(ps_uuid=ps.uuid, cluster_uuid=cluster_uuid))
        return as_dict(ps)


@router.post("/backup_storages", status_code=201)
def create_backup_storage(body: BackupStorageIn, mn: MnState = Depends(mn_of)) -> dict:
    """Add a backup storage, attached to the zones named."""
    with session(mn) as ses:
        bs = BackupStorage(uuid=new_uuid(), name=body.name, type=body.type, url=body.url,
                           total_capacity=body.total_capacity,
                           available_capacity=body.total_capacity, status="Connected")
        ses.add(bs)
        ses.flush()
        for zone_uuid in body.zone_uuids:
            get_or_404(ses, Zone, zone_uuid)
            ses.add(BackupStorageZoneRef(bs_uuid=bs.uuid, zone_uuid=zone_uuid))
        return as_dict(bs)


add_delete_route(router, Zone,
                 "Delete a zone that holds nothing any more.",
                 cascade=("backup_storage_zone_refs",))
add_delete_route(router, Cluster,
                 "Delete a cluster without hosts (its storage and network attachments go with it).",
                 cascade=("primary_storage_cluster_refs", "l2_network_cluster_refs"))
add_delete_route(router, PrimaryStorage,
                 "Delete a primary storage that holds no volume.",
                 cascade=("primary_storage_cluster_refs",))
add_delete_route(router, BackupStorage,
                 "Delete a backup storage that holds no image.",
                 cascade=("backup_storage_zone_refs",))
