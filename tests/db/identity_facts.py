"""Reading who is who in a database at any release (legacy users or Enterprise Management).

Written independently of the migrations (plain SQL over both shapes of the schema), so the
tests check the 4.0.0 identity migration against a second, simple reading of the rule:

- an Allow '**' policy grants everything in the account that owns it, so it makes a user an
  admin only when the policy is of the user's own account (held directly or via a group);
- such a user of the admin account (type SystemAdmin) is a platform admin; such a user of a
  tenant account is the administrator of its account's project, never a platform admin;
- an LDAP uid bound to an account is an Enterprise user of that account (platform admin for
  the admin account); it is named '<uid>@ldap' when a local user of that account already has
  the name '<uid>', so that names stay unique per account.
"""

from __future__ import annotations

import sqlalchemy as sa

ADMIN_ACCOUNT = "SystemAdmin"
LDAP_SUFFIX = "@ldap"


def _rows(conn, sql: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(sa.text(sql))]


def _legacy(conn) -> dict:
    kinds = dict(_rows(conn, "SELECT uuid, type FROM accounts"))
    users = {u: (name, acct) for u, name, acct in
             _rows(conn, "SELECT uuid, name, account_uuid FROM users")}
    allow_all = dict(_rows(conn, "SELECT uuid, account_uuid FROM policies "
                                 "WHERE effect = 'Allow' AND actions = '**'"))
    members = _rows(conn, "SELECT group_uuid, user_uuid FROM user_group_user_refs")
    held = set(_rows(conn, "SELECT user_uuid, policy_uuid FROM user_policy_refs"))
    group_pol = _rows(conn, "SELECT group_uuid, policy_uuid FROM user_group_policy_refs")
    held |= {(u, p) for g, u in members for g2, p in group_pol if g == g2}
    admins = {u for u, p in held if p in allow_all and allow_all[p] == users[u][1]}
    platform = {u for u in admins if kinds[users[u][1]] == ADMIN_ACCOUNT}
    project = {(users[u][1], u) for u in admins - platform}
    groups = dict(_rows(conn, "SELECT uuid, name FROM user_groups"))
    local_names = {(acct, name) for name, acct in users.values()}
    ldap = {(uid, srv, acct, kind == ADMIN_ACCOUNT,
             uid + LDAP_SUFFIX if (acct, uid) in local_names else uid)
            for uid, srv, acct, kind in _rows(
                conn, "SELECT b.ldap_uid, b.ldap_server_uuid, b.account_uuid, a.type "
                      "FROM ldap_account_bindings b JOIN accounts a ON a.uuid = b.account_uuid")}
    return {"users": users, "platform_admins": platform, "project_admins": project,
            "groups": groups, "memberships": set(members), "ldap": ldap}


def _enterprise(conn) -> dict:
    users = {u: (name, acct) for u, name, acct in _rows(
        conn, "SELECT uuid, name, account_uuid FROM em_users WHERE source = 'local'")}
    platform = {u for u, admin in _rows(
        conn, "SELECT uuid, is_platform_admin FROM em_users WHERE source = 'local'") if admin}
    # Every user (LDAP ones too), so a project admin marking given to anyone else shows.
    project = {(acct, u) for acct, u, admin in _rows(
        conn, "SELECT p.linked_account_uuid, m.user_uuid, m.is_project_admin "
              "FROM em_project_members m JOIN em_projects p ON p.uuid = m.project_uuid")
        if admin}
    members = _rows(conn, "SELECT group_uuid, user_uuid FROM em_member_group_users")
    groups = dict(_rows(conn, "SELECT uuid, name FROM em_member_groups"))
    ldap = {(uid, srv, acct, bool(admin), name) for uid, srv, acct, admin, name in _rows(
        conn, "SELECT b.ldap_uid, b.ldap_server_uuid, u.account_uuid, u.is_platform_admin, "
              "u.name FROM em_ldap_bindings b JOIN em_users u ON u.uuid = b.em_user_uuid")}
    unjoined = _rows(
        conn, "SELECT u.uuid FROM em_users u JOIN accounts a ON a.uuid = u.account_uuid "
              "WHERE u.source = 'ldap' AND a.type <> 'SystemAdmin' AND NOT EXISTS ("
              "SELECT 1 FROM em_project_members m JOIN em_projects p "
              "ON p.uuid = m.project_uuid WHERE m.user_uuid = u.uuid "
              "AND p.linked_account_uuid = u.account_uuid)")
    assert not unjoined, f"LDAP users outside their account's project: {unjoined}"
    return {"users": users, "platform_admins": platform, "project_admins": project,
            "groups": groups, "memberships": set(members), "ldap": ldap}


def identity_facts(conn) -> dict:
    """Users, platform and project admins, groups, memberships, LDAP users — any release."""
    if "users" in set(sa.inspect(conn).get_table_names()):
        return _legacy(conn)
    return _enterprise(conn)


def shared_names(conn) -> list[tuple]:
    """(account, name) pairs held by both a local and an LDAP Enterprise user."""
    return _rows(conn, "SELECT l.account_uuid, l.name FROM em_users l JOIN em_users d "
                       "ON d.account_uuid = l.account_uuid AND d.name = l.name "
                       "WHERE l.source = 'local' AND d.source = 'ldap'")
