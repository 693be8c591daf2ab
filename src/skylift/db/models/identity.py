"""Accounts, policies, Enterprise Management (4.x account system), LDAP, API tokens and
which account owns which resource."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from skylift.db.models.base import Base, created_col, name_col, ref, state_col, uuid_pk


class Account(Base):
    __tablename__ = "accounts"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    type: Mapped[str] = mapped_column(sa.String(32))  # SystemAdmin / Normal
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = created_col()


class Policy(Base):
    __tablename__ = "policies"
    uuid: Mapped[str] = uuid_pk()
    account_uuid: Mapped[str] = ref("accounts", index=True)
    name: Mapped[str] = name_col()
    effect: Mapped[str] = mapped_column(sa.String(16))
    actions: Mapped[str] = mapped_column(sa.String(1024))


class EmProject(Base):
    """An Enterprise Management project, linked to the account it came from."""

    __tablename__ = "em_projects"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    linked_account_uuid: Mapped[str] = ref("accounts", index=True)
    state: Mapped[str] = state_col()
    created_at: Mapped[datetime] = created_col()


class EmUser(Base):
    """An Enterprise Management user; source 'local' or 'ldap'."""

    __tablename__ = "em_users"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_platform_admin: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    source: Mapped[str] = mapped_column(sa.String(16))
    account_uuid: Mapped[str | None] = ref("accounts", nullable=True, index=True)
    description: Mapped[str | None] = mapped_column(sa.Text)
    state: Mapped[str] = state_col()
    created_at: Mapped[datetime] = created_col()


class EmMemberGroup(Base):
    __tablename__ = "em_member_groups"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    project_uuid: Mapped[str | None] = ref("em_projects", nullable=True, index=True)
    account_uuid: Mapped[str | None] = ref("accounts", nullable=True)
    description: Mapped[str | None] = mapped_column(sa.Text)


class EmRole(Base):
    __tablename__ = "em_roles"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    account_uuid: Mapped[str | None] = ref("accounts", nullable=True)
    effect: Mapped[str] = mapped_column(sa.String(16))
    actions: Mapped[str] = mapped_column(sa.String(1024))


def _pair(table: str, left: tuple[str, str], right: tuple[str, str],
          *extra: sa.Column) -> sa.Table:
    return sa.Table(
        table, Base.metadata,
        sa.Column(left[0], sa.String(32), sa.ForeignKey(f"{left[1]}.uuid"), primary_key=True),
        sa.Column(right[0], sa.String(32), sa.ForeignKey(f"{right[1]}.uuid"),
                  primary_key=True, index=True),
        *extra,
    )


em_member_group_users = _pair("em_member_group_users", ("group_uuid", "em_member_groups"),
                              ("user_uuid", "em_users"))
em_user_roles = _pair("em_user_roles", ("user_uuid", "em_users"), ("role_uuid", "em_roles"))
em_member_group_roles = _pair("em_member_group_roles", ("group_uuid", "em_member_groups"),
                              ("role_uuid", "em_roles"))
# A tenant's admin administers its own project only; platform-wide rights are
# EmUser.is_platform_admin, for admins of the admin account.
em_project_members = _pair("em_project_members", ("project_uuid", "em_projects"),
                           ("user_uuid", "em_users"),
                           sa.Column("is_project_admin", sa.Boolean, nullable=False,
                                     server_default=sa.false()))


class LdapServer(Base):
    __tablename__ = "ldap_servers"
    uuid: Mapped[str] = uuid_pk()
    name: Mapped[str] = name_col()
    url: Mapped[str] = mapped_column(sa.String(1024))
    base_dn: Mapped[str] = mapped_column(sa.String(1024))
    username: Mapped[str] = mapped_column(sa.String(255))
    encryption: Mapped[str] = mapped_column(sa.String(16))


class EmLdapBinding(Base):
    """An LDAP uid bound to an Enterprise user (bindings moved off accounts at 4.0.0)."""

    __tablename__ = "em_ldap_bindings"
    uuid: Mapped[str] = uuid_pk()
    ldap_server_uuid: Mapped[str] = ref("ldap_servers")
    ldap_uid: Mapped[str] = mapped_column(sa.String(255))
    em_user_uuid: Mapped[str] = ref("em_users", index=True)


class ApiToken(Base):
    """An account's API token: only its SHA-256 is kept; revoking deletes the row."""

    __tablename__ = "api_tokens"
    uuid: Mapped[str] = uuid_pk()
    account_uuid: Mapped[str] = ref("accounts", index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = created_col()
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime)


class AccountResourceRef(Base):
    """Which account owns a resource a tenant can own (ZStack's AccountResourceRefVO).

    One table for every kind, so an owner filter is the same query for all of them; a
    resource without a row is the admin's alone.
    """

    __tablename__ = "account_resource_refs"
    resource_type: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    resource_uuid: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    account_uuid: Mapped[str] = ref("accounts", index=True)
