"""Release 4.0.0, part 1: legacy virtual routers become VPC vRouters.

Each legacy virtual router becomes a VPC vRouter with the same UUID and all its network
attachments; vRouter networks become VPC networks. Set-based SQL only.

Revision ID: r400a
Revises: r390
"""

import sqlalchemy as sa
from alembic import op

from skylift.db.migrations.columns import created_at, name, ref, state, uuid_pk

revision = "r400a"
down_revision = "r390"
branch_labels = None
depends_on = None

ROUTER_COLUMNS = ("uuid", "name", "zone_uuid", "cluster_uuid", "host_uuid", "image_uuid",
                  "management_ip", "public_l3_uuid", "management_l3_uuid", "state", "status",
                  "agent_version", "created_at")


def upgrade() -> None:
    op.create_table(
        "vpc_vrouters", uuid_pk(), name(), ref("zone_uuid", "zones"),
        ref("cluster_uuid", "clusters"), ref("host_uuid", "hosts", nullable=True),
        ref("image_uuid", nullable=True),
        sa.Column("management_ip", sa.String(64), nullable=False),
        ref("public_l3_uuid", "l3_networks"), ref("management_l3_uuid", "l3_networks"),
        state(), state("status"),
        sa.Column("agent_version", sa.String(32), nullable=False), created_at(),
        sa.Column("ha_status", sa.String(32), nullable=False, server_default="NoHa"),
    )
    op.create_table(
        "vpc_vrouter_l3_refs",
        sa.Column("vrouter_uuid", sa.String(32), sa.ForeignKey("vpc_vrouters.uuid"),
                  primary_key=True),
        sa.Column("l3_uuid", sa.String(32), sa.ForeignKey("l3_networks.uuid"),
                  primary_key=True),
        sa.Column("nic_ip", sa.String(64), nullable=False),
    )
    old = sa.table("virtual_routers", *[sa.column(c) for c in ROUTER_COLUMNS])
    new = sa.table("vpc_vrouters", *[sa.column(c) for c in ROUTER_COLUMNS])
    op.execute(new.insert().from_select(ROUTER_COLUMNS, sa.select(*old.c)))

    old_refs = sa.table("virtual_router_l3_refs", sa.column("vr_uuid"), sa.column("l3_uuid"),
                        sa.column("nic_ip"))
    new_refs = sa.table("vpc_vrouter_l3_refs", sa.column("vrouter_uuid"),
                        sa.column("l3_uuid"), sa.column("nic_ip"))
    op.execute(new_refs.insert().from_select(
        ["vrouter_uuid", "l3_uuid", "nic_ip"],
        sa.select(old_refs.c.vr_uuid, old_refs.c.l3_uuid, old_refs.c.nic_ip)))

    l3 = sa.table("l3_networks", sa.column("type"))
    op.execute(l3.update().where(l3.c.type == "L3VRouterNetwork")
               .values(type="L3VpcNetwork"))

    op.drop_table("virtual_router_l3_refs")
    op.drop_table("virtual_routers")
