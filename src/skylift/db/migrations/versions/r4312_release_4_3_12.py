"""Release 4.3.12: a cluster records its QEMU version.

New installs get QEMU 4.2 while an upgraded cloud keeps QEMU 2.12 on its existing hosts, so a
host whose QEMU differs from its cluster's is refused: the cluster's version is taken from
the hosts it already has.

Revision ID: r4312
Revises: r400
"""

import sqlalchemy as sa
from alembic import op

revision = "r4312"
down_revision = "r400"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clusters", sa.Column("qemu_version", sa.String(32), nullable=True))
    clusters = sa.table("clusters", sa.column("uuid"), sa.column("qemu_version"))
    hosts = sa.table("hosts", sa.column("cluster_uuid"), sa.column("qemu_version"))
    op.execute(clusters.update().values(qemu_version=(
        sa.select(sa.func.max(hosts.c.qemu_version))
        .where(hosts.c.cluster_uuid == clusters.c.uuid).scalar_subquery())))
