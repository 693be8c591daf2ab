"""Zones, clusters, hosts, primary and backup storages."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from skylift.db.models.base import Base, created_col, name_col, ref, state_col, uuid_pk


class Zone(Base):
    __tablename__ = "zones"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    description: Mapped[str | None] = mapped_column(sa.Text)
    state: Mapped[str] = state_col()
    created_at: Mapped[datetime] = created_col()


class Cluster(Base):
    __tablename__ = "clusters"
    uuid: Mapped[str] = uuid_pk()
    zone_uuid: Mapped[str] = ref("zones")
    name: Mapped[str] = name_col()
    hypervisor_type: Mapped[str] = mapped_column(sa.String(32))
    state: Mapped[str] = state_col()
    created_at: Mapped[datetime] = created_col()
    # All hosts of a cluster run this QEMU; None until the first host joins.
    qemu_version: Mapped[str | None] = mapped_column(sa.String(32))


class Host(Base):
    __tablename__ = "hosts"
    uuid: Mapped[str] = uuid_pk()
    zone_uuid: Mapped[str] = ref("zones")
    cluster_uuid: Mapped[str] = ref("clusters", index=True)
    name: Mapped[str] = name_col()
    management_ip: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = state_col()
    status: Mapped[str] = state_col()  # Connected / Connecting / Disconnected
    os_release: Mapped[str] = mapped_column(sa.String(16))
    qemu_version: Mapped[str] = mapped_column(sa.String(32))
    libvirt_version: Mapped[str] = mapped_column(sa.String(32))
    agent_version: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = created_col()
    libvirt_auto_upgrade: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())


class PrimaryStorage(Base):
    __tablename__ = "primary_storages"
    uuid: Mapped[str] = uuid_pk()
    zone_uuid: Mapped[str] = ref("zones")
    name: Mapped[str] = name_col()
    type: Mapped[str] = mapped_column(sa.String(64))
    url: Mapped[str] = mapped_column(sa.String(1024))
    total_capacity: Mapped[int] = mapped_column(sa.BigInteger)
    available_capacity: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = state_col()
    ceph_cephx: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    created_at: Mapped[datetime] = created_col()


class PrimaryStorageClusterRef(Base):
    __tablename__ = "primary_storage_cluster_refs"
    ps_uuid: Mapped[str] = ref("primary_storages", primary_key=True)
    cluster_uuid: Mapped[str] = ref("clusters", primary_key=True)


class BackupStorage(Base):
    __tablename__ = "backup_storages"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    type: Mapped[str] = mapped_column(sa.String(64))
    url: Mapped[str] = mapped_column(sa.String(1024))
    total_capacity: Mapped[int] = mapped_column(sa.BigInteger)
    available_capacity: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = state_col()
    created_at: Mapped[datetime] = created_col()


class BackupStorageZoneRef(Base):
    __tablename__ = "backup_storage_zone_refs"
    bs_uuid: Mapped[str] = ref("backup_storages", primary_key=True)
    zone_uuid: Mapped[str] = ref("zones", primary_key=True)
