"""Reading the identity and router facts of a database at any release, for assertions.

Written independently of the migrations (plain SQL over both shapes of the schema), so the
tests check the migrations against a second, simple reading of what the data means.
"""

from __future__ import annotations

import sqlalchemy as sa


def _rows(conn, sql: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(sa.text(sql))]


def tables(conn) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def identity_facts(conn) -> dict:
    """Users (name, account, admin?), groups and memberships, LDAP bindings — legacy or EM."""
    if "users" in tables(conn):
        users = {u: (name, acct) for u, name, acct in
                 _rows(conn, "SELECT uuid, name, account_uuid FROM users")}
        allow_all = {p for (p,) in _rows(
            conn, "SELECT uuid FROM policies WHERE effect = 'Allow' AND actions = '**'")}
        direct = _rows(conn, "SELECT user_uuid, policy_uuid FROM user_policy_refs")
        members = _rows(conn, "SELECT group_uuid, user_uuid FROM user_group_user_refs")
        group_pol = _rows(conn, "SELECT group_uuid, policy_uuid FROM user_group_policy_refs")
        admin_groups = {g for g, p in group_pol if p in allow_all}
        admins = {u for u, p in direct if p in allow_all}
        admins |= {u for g, u in members if g in admin_groups}
        groups = {g: name for g, name in _rows(conn, "SELECT uuid, name FROM user_groups")}
        ldap = {(uid, srv, acct, kind == "SystemAdmin") for uid, srv, acct, kind in _rows(
            conn, "SELECT b.ldap_uid, b.ldap_server_uuid, b.account_uuid, a.type "
                  "FROM ldap_account_bindings b JOIN accounts a ON a.uuid = b.account_uuid")}
    else:
        users = {u: (name, acct) for u, name, acct in _rows(
            conn, "SELECT uuid, name, account_uuid FROM em_users WHERE source = 'local'")}
        admins = {u for u, admin in _rows(
            conn, "SELECT uuid, is_platform_admin FROM em_users WHERE source = 'local'")
            if admin}
        members = _rows(conn, "SELECT group_uuid, user_uuid FROM em_member_group_users")
        groups = {g: name for g, name in _rows(conn, "SELECT uuid, name FROM em_member_groups")}
        # An LDAP uid bound to an account is now an Enterprise user of that account, member
        # of its project (normal accounts) or platform admin (the admin account).
        ldap = {(uid, srv, acct, bool(admin)) for uid, srv, acct, admin in _rows(
            conn, "SELECT b.ldap_uid, b.ldap_server_uuid, u.account_uuid, u.is_platform_admin "
                  "FROM em_ldap_bindings b JOIN em_users u ON u.uuid = b.em_user_uuid")}
        unjoined = _rows(
            conn, "SELECT u.uuid FROM em_users u JOIN accounts a ON a.uuid = u.account_uuid "
                  "WHERE u.source = 'ldap' AND a.type <> 'SystemAdmin' AND NOT EXISTS ("
                  "SELECT 1 FROM em_project_members m JOIN em_projects p "
                  "ON p.uuid = m.project_uuid WHERE m.user_uuid = u.uuid "
                  "AND p.linked_account_uuid = u.account_uuid)")
        assert not unjoined, f"LDAP users outside their account's project: {unjoined}"
    return {"users": users, "admins": admins, "groups": groups,
            "memberships": set(members), "ldap": ldap}


def router_facts(conn) -> dict:
    """Routers by uuid with their attachments (l3, ip) — legacy or VPC."""
    if "virtual_routers" in tables(conn):
        names = _rows(conn, "SELECT uuid, name FROM virtual_routers")
        refs = _rows(conn, "SELECT vr_uuid, l3_uuid, nic_ip FROM virtual_router_l3_refs")
    else:
        names = _rows(conn, "SELECT uuid, name FROM vpc_vrouters")
        refs = _rows(conn, "SELECT vrouter_uuid, l3_uuid, nic_ip FROM vpc_vrouter_l3_refs")
    return {"routers": dict(names), "attachments": set(refs)}
