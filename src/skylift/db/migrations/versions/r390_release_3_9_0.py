"""Release 3.9.0: libvirt auto-upgrade on connect, and the switch that turns it off.

On c74 hosts with QEMU 2.9, libvirt is upgraded to 4.9.0 when a host connects, unless the
management node setting updatePkgWhenConnect is false (read at MN start).

Revision ID: r390
Revises: r371
"""

import sqlalchemy as sa
from alembic import op

revision = "r390"
down_revision = "r371"
branch_labels = None
depends_on = None


def upgrade() -> None:
    settings = sa.table(
        "global_settings", sa.column("category"), sa.column("name"), sa.column("value"),
        sa.column("default_value"), sa.column("description"),
    )
    op.bulk_insert(settings, [{
        "category": "host", "name": "updatePkgWhenConnect", "value": "true",
        "default_value": "true",
        "description": "update host packages (libvirt) from the local repo when a host "
                       "connects; takes effect after a management node restart",
    }])
    op.add_column("hosts", sa.Column("libvirt_auto_upgrade", sa.Boolean, nullable=False,
                                     server_default=sa.true()))
