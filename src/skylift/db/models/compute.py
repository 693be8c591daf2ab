"""Images, offerings, VM instances, volumes, NICs and snapshots."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from skylift.db.models.base import Base, created_col, name_col, ref, state_col, uuid_pk


class Image(Base):
    __tablename__ = "images"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    format: Mapped[str] = mapped_column(sa.String(32))
    media_type: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    md5sum: Mapped[str | None] = mapped_column(sa.String(64))
    platform: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = state_col()
    created_at: Mapped[datetime] = created_col()


class ImageBackupStorageRef(Base):
    __tablename__ = "image_backup_storage_refs"
    image_uuid: Mapped[str] = ref("images", primary_key=True)
    bs_uuid: Mapped[str] = ref("backup_storages", primary_key=True)
    install_path: Mapped[str] = mapped_column(sa.String(1024))


class InstanceOffering(Base):
    __tablename__ = "instance_offerings"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    cpu_num: Mapped[int] = mapped_column(sa.Integer)
    memory_size: Mapped[int] = mapped_column(sa.BigInteger)
    type: Mapped[str] = mapped_column(sa.String(32))


class DiskOffering(Base):
    __tablename__ = "disk_offerings"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    disk_size: Mapped[int] = mapped_column(sa.BigInteger)


class VmInstance(Base):
    __tablename__ = "vm_instances"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    zone_uuid: Mapped[str] = ref("zones")
    cluster_uuid: Mapped[str | None] = ref("clusters", nullable=True)
    host_uuid: Mapped[str | None] = ref("hosts", nullable=True, index=True)
    last_host_uuid: Mapped[str | None] = ref(nullable=True)
    image_uuid: Mapped[str | None] = ref(nullable=True)
    instance_offering_uuid: Mapped[str | None] = ref(nullable=True)
    root_volume_uuid: Mapped[str | None] = ref(nullable=True)
    state: Mapped[str] = state_col()
    ha_level: Mapped[str | None] = mapped_column(sa.String(32))
    type: Mapped[str] = mapped_column(sa.String(32))
    cpu_num: Mapped[int] = mapped_column(sa.Integer)
    memory_size: Mapped[int] = mapped_column(sa.BigInteger)
    platform: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = created_col()


class Volume(Base):
    """A root or data volume; shared volumes since 3.2.0 are raw."""

    __tablename__ = "volumes"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    vm_uuid: Mapped[str | None] = ref("vm_instances", nullable=True, index=True)
    ps_uuid: Mapped[str] = ref("primary_storages")
    disk_offering_uuid: Mapped[str | None] = ref(nullable=True)
    type: Mapped[str] = mapped_column(sa.String(16))
    format: Mapped[str] = mapped_column(sa.String(16))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    is_shareable: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    state: Mapped[str] = state_col()
    status: Mapped[str] = state_col()
    install_path: Mapped[str] = mapped_column(sa.String(1024))
    created_at: Mapped[datetime] = created_col()


class VmNic(Base):
    __tablename__ = "vm_nics"
    uuid: Mapped[str] = uuid_pk()
    vm_uuid: Mapped[str] = ref("vm_instances", index=True)
    l3_uuid: Mapped[str] = ref("l3_networks")
    ip: Mapped[str] = mapped_column(sa.String(64))
    mac: Mapped[str] = mapped_column(sa.String(32))
    device_id: Mapped[int] = mapped_column(sa.Integer)


class VolumeSnapshot(Base):
    __tablename__ = "volume_snapshots"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    volume_uuid: Mapped[str] = ref("volumes", index=True)
    ps_uuid: Mapped[str] = ref("primary_storages")
    size: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = state_col()
    created_at: Mapped[datetime] = created_col()
