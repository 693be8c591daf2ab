"""Release 4.0.0, part 2: users and user groups are replaced by Enterprise Management.

Every normal account becomes a project linked to it; every user becomes an Enterprise user
with the same UUID, name and password, member of its account's project; user groups become
member groups with the same memberships; policies become roles (account policies stay).

Admin rights. A legacy policy grants within the account that owns it, so a user holds admin
rights when an Allow policy on all actions ('**') *of its own account* is attached to it,
directly or through a group. Such a user of the admin account (type SystemAdmin) becomes a
platform admin. Such a user of a tenant account becomes the administrator of its account's
project (em_project_members.is_project_admin) and never a platform admin: its rights stay
within its tenant. An allow-all policy of another account makes nobody an admin (it still
becomes a role attached to the user). LDAP uids bound to accounts become Enterprise users in
the next revision (r400). Set-based SQL only.

Revision ID: r400b
Revises: r400a
"""

import sqlalchemy as sa
from alembic import op

from skylift.db.migrations.columns import created_at, name, ref, uuid_pk

revision = "r400b"
down_revision = "r400a"
branch_labels = None
depends_on = None

ADMIN_ACTIONS = "**"


def _pair_table(table: str, left: tuple[str, str], right: tuple[str, str],
                *extra: sa.Column) -> None:
    op.create_table(
        table,
        sa.Column(left[0], sa.String(32), sa.ForeignKey(f"{left[1]}.uuid"), primary_key=True),
        sa.Column(right[0], sa.String(32), sa.ForeignKey(f"{right[1]}.uuid"), primary_key=True,
                  index=True),
        *extra,
    )


def _create_tables() -> None:
    op.create_table(
        "em_projects", uuid_pk(), name(), ref("linked_account_uuid", "accounts", index=True),
        sa.Column("state", sa.String(32), nullable=False), created_at(),
    )
    op.create_table(
        "em_users", uuid_pk(), name(),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("is_platform_admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("source", sa.String(16), nullable=False),
        ref("account_uuid", "accounts", nullable=True, index=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("state", sa.String(32), nullable=False), created_at(),
    )
    op.create_table(
        "em_member_groups", uuid_pk(), name(),
        ref("project_uuid", "em_projects", nullable=True, index=True),
        ref("account_uuid", "accounts", nullable=True),
        sa.Column("description", sa.Text, nullable=True),
    )
    op.create_table(
        "em_roles", uuid_pk(), name(), ref("account_uuid", "accounts", nullable=True),
        sa.Column("effect", sa.String(16), nullable=False),
        sa.Column("actions", sa.String(1024), nullable=False),
    )
    _pair_table("em_member_group_users", ("group_uuid", "em_member_groups"),
                ("user_uuid", "em_users"))
    _pair_table("em_user_roles", ("user_uuid", "em_users"), ("role_uuid", "em_roles"))
    _pair_table("em_member_group_roles", ("group_uuid", "em_member_groups"),
                ("role_uuid", "em_roles"))
    _pair_table("em_project_members", ("project_uuid", "em_projects"),
                ("user_uuid", "em_users"),
                sa.Column("is_project_admin", sa.Boolean, nullable=False,
                          server_default=sa.false()))


def _t(table: str, *cols: str) -> sa.TableClause:
    return sa.table(table, *[sa.column(c) for c in cols])


def _copy(target: str, cols: list[str], select: sa.Select) -> None:
    op.execute(_t(target, *cols).insert().from_select(cols, select))


def _migrate_data() -> None:
    accounts = _t("accounts", "uuid", "name", "type", "created_at")
    users = _t("users", "uuid", "account_uuid", "name", "password_hash", "description",
               "created_at")
    groups = _t("user_groups", "uuid", "account_uuid", "name", "description")
    group_users = _t("user_group_user_refs", "group_uuid", "user_uuid")
    policies = _t("policies", "uuid", "account_uuid", "name", "effect", "actions")
    user_policies = _t("user_policy_refs", "user_uuid", "policy_uuid")
    group_policies = _t("user_group_policy_refs", "group_uuid", "policy_uuid")
    projects = _t("em_projects", "uuid", "linked_account_uuid")

    _copy("em_projects", ["uuid", "name", "linked_account_uuid", "state", "created_at"],
          sa.select(accounts.c.uuid, accounts.c.name, accounts.c.uuid, sa.literal("Enabled"),
                    accounts.c.created_at).where(accounts.c.type != "SystemAdmin"))
    _copy("em_roles", ["uuid", "name", "account_uuid", "effect", "actions"],
          sa.select(policies.c.uuid, policies.c.name, policies.c.account_uuid,
                    policies.c.effect, policies.c.actions))

    # Scoped to the user's own account: a tenant's allow-all reaches no further than the
    # tenant, so it must not turn into rights over the whole platform.
    grants_all = sa.and_(policies.c.effect == "Allow", policies.c.actions == ADMIN_ACTIONS,
                         policies.c.account_uuid == users.c.account_uuid)
    admin_direct = sa.exists().where(
        user_policies.c.user_uuid == users.c.uuid,
        user_policies.c.policy_uuid == policies.c.uuid, grants_all)
    admin_by_group = sa.exists().where(
        group_users.c.user_uuid == users.c.uuid,
        group_policies.c.group_uuid == group_users.c.group_uuid,
        group_policies.c.policy_uuid == policies.c.uuid, grants_all)
    is_admin = sa.or_(admin_direct, admin_by_group)
    of_admin_account = sa.exists().where(accounts.c.uuid == users.c.account_uuid,
                                         accounts.c.type == "SystemAdmin")
    is_platform_admin = sa.case((sa.and_(of_admin_account, is_admin), sa.true()),
                                else_=sa.false())
    _copy("em_users", ["uuid", "name", "password_hash", "is_platform_admin", "source",
                       "account_uuid", "description", "state", "created_at"],
          sa.select(users.c.uuid, users.c.name, users.c.password_hash, is_platform_admin,
                    sa.literal("local"), users.c.account_uuid, users.c.description,
                    sa.literal("Enabled"), users.c.created_at))

    _copy("em_member_groups", ["uuid", "name", "project_uuid", "account_uuid", "description"],
          sa.select(groups.c.uuid, groups.c.name, projects.c.uuid, groups.c.account_uuid,
                    groups.c.description)
          .select_from(groups.outerjoin(
              projects, projects.c.linked_account_uuid == groups.c.account_uuid)))
    _copy("em_member_group_users", ["group_uuid", "user_uuid"],
          sa.select(group_users.c.group_uuid, group_users.c.user_uuid))
    _copy("em_user_roles", ["user_uuid", "role_uuid"],
          sa.select(user_policies.c.user_uuid, user_policies.c.policy_uuid))
    _copy("em_member_group_roles", ["group_uuid", "role_uuid"],
          sa.select(group_policies.c.group_uuid, group_policies.c.policy_uuid))
    # Only tenant accounts have a project, so the admin account's admins get no such marking.
    is_project_admin = sa.case((is_admin, sa.true()), else_=sa.false())
    _copy("em_project_members", ["project_uuid", "user_uuid", "is_project_admin"],
          sa.select(projects.c.uuid, users.c.uuid, is_project_admin)
          .select_from(users.join(projects,
                                  projects.c.linked_account_uuid == users.c.account_uuid)))


def upgrade() -> None:
    _create_tables()
    _migrate_data()
    for table in ("user_group_policy_refs", "user_policy_refs", "user_group_user_refs",
                  "user_groups", "users"):
        op.drop_table(table)
