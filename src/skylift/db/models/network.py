"""L2 and L3 networks, IP ranges, VPC vRouters, security groups, VIPs and EIPs."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from skylift.db.models.base import Base, created_col, name_col, ref, state_col, uuid_pk


class L2Network(Base):
    __tablename__ = "l2_networks"
    uuid: Mapped[str] = uuid_pk()
    zone_uuid: Mapped[str] = ref("zones")
    name: Mapped[str] = name_col()
    type: Mapped[str] = mapped_column(sa.String(64))
    physical_interface: Mapped[str] = mapped_column(sa.String(64))
    vlan: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = created_col()


class L2NetworkClusterRef(Base):
    __tablename__ = "l2_network_cluster_refs"
    l2_uuid: Mapped[str] = ref("l2_networks", primary_key=True)
    cluster_uuid: Mapped[str] = ref("clusters", primary_key=True)


class L3Network(Base):
    """An L3 network: flat (L3BasicNetwork), VPC (L3VpcNetwork), public or management."""

    __tablename__ = "l3_networks"
    uuid: Mapped[str] = uuid_pk()
    l2_uuid: Mapped[str] = ref("l2_networks")
    zone_uuid: Mapped[str] = ref("zones")
    name: Mapped[str] = name_col()
    category: Mapped[str] = mapped_column(sa.String(32))
    type: Mapped[str] = mapped_column(sa.String(64))
    dns_domain: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = created_col()


class IpRange(Base):
    __tablename__ = "ip_ranges"
    uuid: Mapped[str] = uuid_pk()
    l3_uuid: Mapped[str] = ref("l3_networks", index=True)
    start_ip: Mapped[str] = mapped_column(sa.String(64))
    end_ip: Mapped[str] = mapped_column(sa.String(64))
    netmask: Mapped[str] = mapped_column(sa.String(64))
    gateway: Mapped[str] = mapped_column(sa.String(64))


class VpcVRouter(Base):
    """A VPC vRouter (the legacy virtual routers became these at 4.0.0, same UUIDs)."""

    __tablename__ = "vpc_vrouters"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    zone_uuid: Mapped[str] = ref("zones")
    cluster_uuid: Mapped[str] = ref("clusters")
    host_uuid: Mapped[str | None] = ref("hosts", nullable=True)
    image_uuid: Mapped[str | None] = ref(nullable=True)
    management_ip: Mapped[str] = mapped_column(sa.String(64))
    public_l3_uuid: Mapped[str] = ref("l3_networks")
    management_l3_uuid: Mapped[str] = ref("l3_networks")
    state: Mapped[str] = state_col()
    status: Mapped[str] = state_col()
    agent_version: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = created_col()
    ha_status: Mapped[str] = mapped_column(sa.String(32), server_default="NoHa")


class VpcVRouterL3Ref(Base):
    __tablename__ = "vpc_vrouter_l3_refs"
    vrouter_uuid: Mapped[str] = ref("vpc_vrouters", primary_key=True)
    l3_uuid: Mapped[str] = ref("l3_networks", primary_key=True)
    nic_ip: Mapped[str] = mapped_column(sa.String(64))


class SecurityGroup(Base):
    __tablename__ = "security_groups"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    state: Mapped[str] = state_col()
    created_at: Mapped[datetime] = created_col()


class SecurityGroupRule(Base):
    __tablename__ = "security_group_rules"
    uuid: Mapped[str] = uuid_pk()
    sg_uuid: Mapped[str] = ref("security_groups", index=True)
    type: Mapped[str] = mapped_column(sa.String(16))
    protocol: Mapped[str] = mapped_column(sa.String(16))
    start_port: Mapped[int] = mapped_column(sa.Integer)
    end_port: Mapped[int] = mapped_column(sa.Integer)
    allowed_cidr: Mapped[str] = mapped_column(sa.String(64))


class VmNicSecurityGroupRef(Base):
    __tablename__ = "vm_nic_security_group_refs"
    nic_uuid: Mapped[str] = ref("vm_nics", primary_key=True)
    sg_uuid: Mapped[str] = ref("security_groups", primary_key=True)


class Vip(Base):
    __tablename__ = "vips"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    l3_uuid: Mapped[str] = ref("l3_networks")
    ip: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = state_col()
    use_for: Mapped[str | None] = mapped_column(sa.String(64))


class Eip(Base):
    __tablename__ = "eips"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    vip_uuid: Mapped[str] = ref("vips")
    vm_nic_uuid: Mapped[str | None] = ref("vm_nics", nullable=True)
    state: Mapped[str] = state_col()
