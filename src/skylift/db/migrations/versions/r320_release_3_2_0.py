"""Release 3.2.0: the base schema of the lineage.

Legacy virtual routers and vRouter networks, accounts with users, user groups and policies,
LDAP bindings on accounts, hosts with their OS release and package versions, shared volumes
(created raw), global settings and the management node heartbeat.

Revision ID: r320
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

from skylift.db.migrations.columns import created_at, name, ref, state, uuid_pk

revision = "r320"
down_revision = None
branch_labels = None
depends_on = None


def _settings_and_heartbeat() -> None:
    # These two tables keep the same shape at every revision: the management node's
    # maintenance mode reads them whatever the release of the database.
    op.create_table(
        "global_settings",
        sa.Column("category", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("default_value", sa.Text, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
    )
    op.create_table(
        "mn_heartbeat",
        uuid_pk(),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        state(),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
    )


def _infrastructure() -> None:
    op.create_table("zones", uuid_pk(), name(), sa.Column("description", sa.Text), state(),
                    created_at())
    op.create_table(
        "clusters", uuid_pk(), ref("zone_uuid", "zones"), name(),
        sa.Column("hypervisor_type", sa.String(32), nullable=False), state(), created_at(),
    )
    op.create_table(
        "hosts", uuid_pk(), ref("zone_uuid", "zones"),
        ref("cluster_uuid", "clusters", index=True), name(),
        sa.Column("management_ip", sa.String(64), nullable=False), state(), state("status"),
        sa.Column("os_release", sa.String(16), nullable=False),
        sa.Column("qemu_version", sa.String(32), nullable=False),
        sa.Column("libvirt_version", sa.String(32), nullable=False),
        sa.Column("agent_version", sa.String(32), nullable=False),
        created_at(),
    )
    op.create_table(
        "primary_storages", uuid_pk(), ref("zone_uuid", "zones"), name(),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("total_capacity", sa.BigInteger, nullable=False),
        sa.Column("available_capacity", sa.BigInteger, nullable=False),
        state("status"),
        sa.Column("ceph_cephx", sa.Boolean, nullable=False, server_default=sa.false()),
        created_at(),
    )
    op.create_table(
        "primary_storage_cluster_refs",
        sa.Column("ps_uuid", sa.String(32), sa.ForeignKey("primary_storages.uuid"),
                  primary_key=True),
        sa.Column("cluster_uuid", sa.String(32), sa.ForeignKey("clusters.uuid"),
                  primary_key=True),
    )
    op.create_table(
        "backup_storages", uuid_pk(), name(),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("total_capacity", sa.BigInteger, nullable=False),
        sa.Column("available_capacity", sa.BigInteger, nullable=False),
        state("status"), created_at(),
    )
    op.create_table(
        "backup_storage_zone_refs",
        sa.Column("bs_uuid", sa.String(32), sa.ForeignKey("backup_storages.uuid"),
                  primary_key=True),
        sa.Column("zone_uuid", sa.String(32), sa.ForeignKey("zones.uuid"), primary_key=True),
    )


def _networks() -> None:
    op.create_table(
        "l2_networks", uuid_pk(), ref("zone_uuid", "zones"), name(),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("physical_interface", sa.String(64), nullable=False),
        sa.Column("vlan", sa.Integer, nullable=True), created_at(),
    )
    op.create_table(
        "l2_network_cluster_refs",
        sa.Column("l2_uuid", sa.String(32), sa.ForeignKey("l2_networks.uuid"),
                  primary_key=True),
        sa.Column("cluster_uuid", sa.String(32), sa.ForeignKey("clusters.uuid"),
                  primary_key=True),
    )
    op.create_table(
        "l3_networks", uuid_pk(), ref("l2_uuid", "l2_networks"), ref("zone_uuid", "zones"),
        name(), sa.Column("category", sa.String(32), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("dns_domain", sa.String(255), nullable=True), created_at(),
    )
    op.create_table(
        "ip_ranges", uuid_pk(), ref("l3_uuid", "l3_networks", index=True),
        sa.Column("start_ip", sa.String(64), nullable=False),
        sa.Column("end_ip", sa.String(64), nullable=False),
        sa.Column("netmask", sa.String(64), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
    )


def _images_and_offerings() -> None:
    op.create_table(
        "images", uuid_pk(), name(),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("md5sum", sa.String(64), nullable=True),
        sa.Column("platform", sa.String(32), nullable=False),
        state("status"), created_at(),
    )
    op.create_table(
        "image_backup_storage_refs",
        sa.Column("image_uuid", sa.String(32), sa.ForeignKey("images.uuid"), primary_key=True),
        sa.Column("bs_uuid", sa.String(32), sa.ForeignKey("backup_storages.uuid"),
                  primary_key=True),
        sa.Column("install_path", sa.String(1024), nullable=False),
    )
    op.create_table(
        "instance_offerings", uuid_pk(), name(),
        sa.Column("cpu_num", sa.Integer, nullable=False),
        sa.Column("memory_size", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
    )
    op.create_table("disk_offerings", uuid_pk(), name(),
                    sa.Column("disk_size", sa.BigInteger, nullable=False))


def _vms_and_volumes() -> None:
    op.create_table(
        "vm_instances", uuid_pk(), name(), ref("zone_uuid", "zones"),
        ref("cluster_uuid", "clusters", nullable=True),
        ref("host_uuid", "hosts", nullable=True, index=True),
        ref("last_host_uuid", nullable=True),
        ref("image_uuid", nullable=True), ref("instance_offering_uuid", nullable=True),
        ref("root_volume_uuid", nullable=True), state(),
        sa.Column("ha_level", sa.String(32), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("cpu_num", sa.Integer, nullable=False),
        sa.Column("memory_size", sa.BigInteger, nullable=False),
        sa.Column("platform", sa.String(32), nullable=False), created_at(),
    )
    op.create_table(
        "volumes", uuid_pk(), name(), ref("vm_uuid", "vm_instances", nullable=True, index=True),
        ref("ps_uuid", "primary_storages"), ref("disk_offering_uuid", nullable=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("is_shareable", sa.Boolean, nullable=False, server_default=sa.false()),
        state(), state("status"),
        sa.Column("install_path", sa.String(1024), nullable=False), created_at(),
    )
    op.create_table(
        "vm_nics", uuid_pk(), ref("vm_uuid", "vm_instances", index=True),
        ref("l3_uuid", "l3_networks"),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(32), nullable=False),
        sa.Column("device_id", sa.Integer, nullable=False),
    )
    op.create_table(
        "volume_snapshots", uuid_pk(), name(), ref("volume_uuid", "volumes", index=True),
        ref("ps_uuid", "primary_storages"),
        sa.Column("size", sa.BigInteger, nullable=False), state("status"), created_at(),
    )


def _virtual_routers() -> None:
    op.create_table(
        "virtual_routers", uuid_pk(), name(), ref("zone_uuid", "zones"),
        ref("cluster_uuid", "clusters"), ref("host_uuid", "hosts", nullable=True),
        ref("image_uuid", nullable=True),
        sa.Column("management_ip", sa.String(64), nullable=False),
        ref("public_l3_uuid", "l3_networks"), ref("management_l3_uuid", "l3_networks"),
        state(), state("status"),
        sa.Column("agent_version", sa.String(32), nullable=False), created_at(),
    )
    op.create_table(
        "virtual_router_l3_refs",
        sa.Column("vr_uuid", sa.String(32), sa.ForeignKey("virtual_routers.uuid"),
                  primary_key=True),
        sa.Column("l3_uuid", sa.String(32), sa.ForeignKey("l3_networks.uuid"),
                  primary_key=True),
        sa.Column("nic_ip", sa.String(64), nullable=False),
    )


def _network_services() -> None:
    op.create_table("security_groups", uuid_pk(), name(), state(), created_at())
    op.create_table(
        "security_group_rules", uuid_pk(), ref("sg_uuid", "security_groups", index=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("start_port", sa.Integer, nullable=False),
        sa.Column("end_port", sa.Integer, nullable=False),
        sa.Column("allowed_cidr", sa.String(64), nullable=False),
    )
    op.create_table(
        "vm_nic_security_group_refs",
        sa.Column("nic_uuid", sa.String(32), sa.ForeignKey("vm_nics.uuid"), primary_key=True),
        sa.Column("sg_uuid", sa.String(32), sa.ForeignKey("security_groups.uuid"),
                  primary_key=True),
    )
    op.create_table(
        "vips", uuid_pk(), name(), ref("l3_uuid", "l3_networks"),
        sa.Column("ip", sa.String(64), nullable=False), state(),
        sa.Column("use_for", sa.String(64), nullable=True),
    )
    op.create_table(
        "eips", uuid_pk(), name(), ref("vip_uuid", "vips"),
        ref("vm_nic_uuid", "vm_nics", nullable=True), state(),
    )


def _accounts() -> None:
    op.create_table(
        "accounts", uuid_pk(), sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False), created_at(),
    )
    op.create_table(
        "users", uuid_pk(), ref("account_uuid", "accounts", index=True), name(),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=True), created_at(),
    )
    op.create_table(
        "user_groups", uuid_pk(), ref("account_uuid", "accounts", index=True), name(),
        sa.Column("description", sa.Text, nullable=True),
    )
    op.create_table(
        "user_group_user_refs",
        sa.Column("group_uuid", sa.String(32), sa.ForeignKey("user_groups.uuid"),
                  primary_key=True),
        sa.Column("user_uuid", sa.String(32), sa.ForeignKey("users.uuid"), primary_key=True),
    )
    op.create_table(
        "policies", uuid_pk(), ref("account_uuid", "accounts", index=True), name(),
        sa.Column("effect", sa.String(16), nullable=False),
        sa.Column("actions", sa.String(1024), nullable=False),
    )
    op.create_table(
        "user_policy_refs",
        sa.Column("user_uuid", sa.String(32), sa.ForeignKey("users.uuid"), primary_key=True),
        sa.Column("policy_uuid", sa.String(32), sa.ForeignKey("policies.uuid"),
                  primary_key=True),
    )
    op.create_table(
        "user_group_policy_refs",
        sa.Column("group_uuid", sa.String(32), sa.ForeignKey("user_groups.uuid"),
                  primary_key=True),
        sa.Column("policy_uuid", sa.String(32), sa.ForeignKey("policies.uuid"),
                  primary_key=True),
    )
    op.create_table(
        "ldap_servers", uuid_pk(), name(),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("base_dn", sa.String(1024), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("encryption", sa.String(16), nullable=False),
    )
    op.create_table(
        "ldap_account_bindings", uuid_pk(), ref("ldap_server_uuid", "ldap_servers"),
        sa.Column("ldap_uid", sa.String(255), nullable=False),
        ref("account_uuid", "accounts", index=True),
    )


def upgrade() -> None:
    _settings_and_heartbeat()
    _infrastructure()
    _networks()
    _images_and_offerings()
    _vms_and_volumes()
    _virtual_routers()
    _network_services()
    _accounts()
