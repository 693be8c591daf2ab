"""Release 4.0.0, part 3: LDAP bindings move from accounts to Enterprise Management.

Each binding of an LDAP uid to an account becomes an Enterprise user of source 'ldap' (same
UUID as the binding) bound to that uid, member of the project linked to the account; a uid
bound to the admin account logged in with full rights, so it becomes a platform admin.

Names stay unique per account: when a local user of the account already has the name of the
LDAP uid (both became Enterprise users of that account), the LDAP-bound Enterprise user is
named '<uid>@ldap' instead; the uid it is bound to is unchanged, so the person still logs in
with it. The preflight check 'ldap-local-names' lists these before the upgrade, so that the
operator can rename one of the two first.

Revision ID: r400
Revises: r400b
"""

import sqlalchemy as sa
from alembic import op

from skylift.db.migrations.columns import ref, uuid_pk

revision = "r400"
down_revision = "r400b"
branch_labels = None
depends_on = None

LDAP_SUFFIX = "@ldap"


def upgrade() -> None:
    op.create_table(
        "em_ldap_bindings", uuid_pk(), ref("ldap_server_uuid", "ldap_servers"),
        sa.Column("ldap_uid", sa.String(255), nullable=False),
        ref("em_user_uuid", "em_users", index=True),
    )
    old = sa.table("ldap_account_bindings", sa.column("uuid"), sa.column("ldap_server_uuid"),
                   sa.column("ldap_uid", sa.String), sa.column("account_uuid"))
    users = sa.table("em_users", *[sa.column(c) for c in (
        "uuid", "name", "password_hash", "is_platform_admin", "source", "account_uuid",
        "state")])
    accounts = sa.table("accounts", sa.column("uuid"), sa.column("type"))
    is_admin = sa.case((accounts.c.type == "SystemAdmin", sa.true()), else_=sa.false())
    local = users.alias("local")
    name_taken = sa.exists().where(local.c.source == "local",
                                   local.c.account_uuid == old.c.account_uuid,
                                   local.c.name == old.c.ldap_uid)
    name = sa.case((name_taken, old.c.ldap_uid + LDAP_SUFFIX), else_=old.c.ldap_uid)
    op.execute(users.insert().from_select(
        ["uuid", "name", "password_hash", "is_platform_admin", "source", "account_uuid",
         "state"],
        sa.select(old.c.uuid, name, sa.literal(""), is_admin, sa.literal("ldap"),
                  old.c.account_uuid, sa.literal("Enabled"))
        .select_from(old.join(accounts, accounts.c.uuid == old.c.account_uuid))))
    bindings = sa.table("em_ldap_bindings", sa.column("uuid"), sa.column("ldap_server_uuid"),
                        sa.column("ldap_uid"), sa.column("em_user_uuid"))
    op.execute(bindings.insert().from_select(
        ["uuid", "ldap_server_uuid", "ldap_uid", "em_user_uuid"],
        sa.select(old.c.uuid, old.c.ldap_server_uuid, old.c.ldap_uid, old.c.uuid)))
    projects = sa.table("em_projects", sa.column("uuid"), sa.column("linked_account_uuid"))
    members = sa.table("em_project_members", sa.column("project_uuid"), sa.column("user_uuid"))
    op.execute(members.insert().from_select(
        ["project_uuid", "user_uuid"],
        sa.select(projects.c.uuid, old.c.uuid).select_from(
            old.join(projects, projects.c.linked_account_uuid == old.c.account_uuid))))
    op.drop_table("ldap_account_bindings")
