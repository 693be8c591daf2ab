"""Release 4.3.12, part 2: API tokens of accounts, and which account owns each resource.

Accounts get API tokens (only a token's SHA-256 is stored) and every resource a tenant can
own records its account in account_resource_refs (ZStack's AccountResourceRefVO): one row per
resource, keyed by kind and uuid. No earlier release recorded an owner, so every existing
resource of those kinds is given to the admin account (the one of type SystemAdmin; the
oldest if there were several), which is who could act on it before; a cloud without an admin
account gets no rows, and a resource without a row is the admin's alone. Set-based SQL.

Revision ID: r4312a
Revises: r4312
"""

import sqlalchemy as sa
from alembic import op

from skylift.db.migrations.columns import created_at, ref, uuid_pk

revision = "r4312a"
down_revision = "r4312"
branch_labels = None
depends_on = None

# the kinds a tenant can own (kept in step with skylift.mn.access.OWNABLE)
OWNABLE = ("vm_instances", "volumes", "volume_snapshots", "images", "l3_networks",
           "security_groups", "vips", "eips")


def upgrade() -> None:
    op.create_table(
        "api_tokens", uuid_pk(), ref("account_uuid", "accounts", index=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        created_at(), sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "account_resource_refs",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("resource_uuid", sa.String(32), primary_key=True),
        ref("account_uuid", "accounts", index=True),
    )
    accounts = sa.table("accounts", sa.column("uuid"), sa.column("type"),
                        sa.column("created_at"))
    admin = op.get_bind().execute(
        sa.select(accounts.c.uuid).where(accounts.c.type == "SystemAdmin")
        .order_by(accounts.c.created_at, accounts.c.uuid).limit(1)).scalar()
    if admin is None:
        return
    refs = sa.table("account_resource_refs", sa.column("resource_type"),
                    sa.column("resource_uuid"), sa.column("account_uuid"))
    for kind in OWNABLE:
        rows = sa.table(kind, sa.column("uuid"))
        op.execute(refs.insert().from_select(
            ["resource_type", "resource_uuid", "account_uuid"],
            sa.select(sa.literal(kind), rows.c.uuid, sa.literal(admin))))
