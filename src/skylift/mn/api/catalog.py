"""Images, instance offerings and disk offerings: create and delete."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from skylift.db.models.compute import DiskOffering, Image, ImageBackupStorageRef, InstanceOffering
from skylift.db.models.infrastructure import BackupStorage
from skylift.mn.api import mn_of
from skylift.mn.api.fields import INT64_MAX, MAX_REFS, Digest, Kind, Name, Short, Size, Uuid
from skylift.mn.api.rows import add_delete_route, as_dict, get_or_404, new_uuid, session
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1", tags=["catalog"])


class ImageIn(BaseModel):
    name: Name
    format: Short = "qcow2"
    media_type: Kind = "RootVolumeTemplate"
    size: Size = 10 << 30
    md5sum: Digest | None = None
    platform: Short = "Linux"
    backup_storage_uuids: list[Uuid] = Field(default=[], max_length=MAX_REFS)


class InstanceOfferingIn(BaseModel):
    name: Name
    cpu_num: int = Field(ge=1, le=1024)
    memory_size: int = Field(ge=1 << 20, le=INT64_MAX)
    type: Short = "UserVm"


class DiskOfferingIn(BaseModel):
    name: Name
    disk_size: int = Field(ge=1 << 20, le=INT64_MAX)


@router.post("/images", status_code=201)
def create_image(body: ImageIn, mn: MnState = Depends(mn_of)) -> dict:
    """Register an image on the backup storages named."""
    with session(mn) as ses:
        image = Image(uuid=new_uuid(), name=body.name, format=body.format,
                      media_type=body.media_type, size=body.size, md5sum=body.md5sum,
                      platform=body.platform, status="Ready")
        ses.add(image)
        ses.flush()
        for bs_uuid in body.backup_storage_uuids:
            get_or_404(ses, BackupStorage, bs_uuid)
            ses.add(ImageBackupStorageRef(image_uuid=image.uuid, bs_uuid=bs_uuid,
                                          install_path=f"images/{image.uuid}.{body.format}"))
        return as_dict(image)


@router.post("/instance_offerings", status_code=201)
def create_instance_offering(body: InstanceOfferingIn, mn: MnState = Depends(mn_of)) -> dict:
    """Create an instance offering (CPUs and memory in bytes)."""
    with session(mn) as ses:
        offering = InstanceOffering(uuid=new_uuid(), **body.model_dump())
        ses.add(offering)
        ses.flush()
        return as_dict(offering)


@router.post("/disk_offerings", status_code=201)
def create_disk_offering(body: DiskOfferingIn, mn: MnState = Depends(mn_of)) -> dict:
    """Create a disk offering (size in bytes)."""
    with session(mn) as ses:
        offering = DiskOffering(uuid=new_uuid(), **body.model_dump())
        ses.add(offering)
        ses.flush()
        return as_dict(offering)


add_delete_route(router, Image,
                 "Delete an image (and its copies on backup storages).",
                 cascade=("image_backup_storage_refs",))
add_delete_route(router, InstanceOffering,
                 "Delete an instance offering (VMs made from it keep their size).")
add_delete_route(router, DiskOffering, "Delete a disk offering.")
