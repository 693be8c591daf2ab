"""4.0.0: users and groups become Enterprise Management; LDAP bindings move with them."""

from skylift.engine.checks import Severity, check
from skylift.upgrade.checks._lineage import crosses


@check("enterprise-management", "Users and user groups move to Enterprise Management",
       severity=Severity.INFO, remedy="")
def enterprise_management(ctx):
    if not crosses(ctx, "4.0.0") or "users" not in ctx.facts.tables:
        return None
    c = ctx.facts.counts
    admins = ctx.facts.scalar(
        "SELECT COUNT(DISTINCT r.user_uuid) FROM user_policy_refs r JOIN policies p "
        "ON p.uuid = r.policy_uuid WHERE p.effect = 'Allow' AND p.actions = '**'")
    return (f"{c.get('users', 0)} users and {c.get('user_groups', 0)} user groups become "
            f"Enterprise users and member groups (same names and memberships); users with "
            f"admin rights ({admins} directly, more through groups) become platform admins")


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
