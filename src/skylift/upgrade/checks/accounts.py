"""4.0.0: users and groups become Enterprise Management; LDAP bindings move with them."""

from skylift.engine.checks import Severity, check
from skylift.upgrade.checks._lineage import crosses


# Who holds an allow-all policy (directly or through a group), and whose account owns it.
ALLOW_ALL_HOLDERS = (
    "SELECT r.user_uuid, p.account_uuid FROM user_policy_refs r JOIN policies p "
    "ON p.uuid = r.policy_uuid WHERE p.effect = 'Allow' AND p.actions = '**' UNION "
    "SELECT m.user_uuid, p.account_uuid FROM user_group_user_refs m "
    "JOIN user_group_policy_refs g ON g.group_uuid = m.group_uuid "
    "JOIN policies p ON p.uuid = g.policy_uuid WHERE p.effect = 'Allow' AND p.actions = '**'")


@check("enterprise-management", "Users and user groups move to Enterprise Management",
       severity=Severity.INFO, remedy="")
def enterprise_management(ctx):
    if not crosses(ctx, "4.0.0") or "users" not in ctx.facts.tables:
        return None
    c = ctx.facts.counts
    held = ctx.facts.rows(
        "SELECT h.user_uuid, CASE WHEN h.account_uuid = u.account_uuid THEN 1 ELSE 0 END, "
        f"a.type FROM ({ALLOW_ALL_HOLDERS}) h JOIN users u ON u.uuid = h.user_uuid "
        "JOIN accounts a ON a.uuid = u.account_uuid")
    # The rule of the migration (r400b): only a policy of the user's own account counts.
    admins = {user: kind for user, own, kind in held if own}
    platform = sum(kind == "SystemAdmin" for kind in admins.values())
    foreign = {user for user, own, _ in held if not own} - admins.keys()
    summary = (f"{c.get('users', 0)} users and {c.get('user_groups', 0)} user groups become "
               f"Enterprise users and member groups (same names and memberships); users with "
               f"an allow-all policy of their own account: platform admins: {platform} "
               f"(users of the admin account), project admins: {len(admins) - platform} "
               "(tenant users: each administers its account's project only, never the "
               "platform)")
    if foreign:
        summary += (f"; {len(foreign)} users hold an allow-all policy of another account "
                    "only: it stays a role of theirs but makes them no admin")
    return summary


@check("ldap-bindings", "LDAP bindings move to Enterprise Management",
       severity=Severity.INFO, remedy="")
def ldap_bindings(ctx):
    if not crosses(ctx, "4.0.0") or "ldap_account_bindings" not in ctx.facts.tables:
        return None
    n = ctx.facts.counts.get("ldap_bindings", 0)
    if n:
        return (f"{n} LDAP bindings on accounts become Enterprise users bound to the same "
                "LDAP uids, members of their account's project")
    return None
