"""4.0.0: an LDAP uid named like a local user of its account (both become Enterprise users)."""

from skylift.engine.checks import Severity, check
from skylift.upgrade.checks._lineage import crosses

LDAP_SUFFIX = "@ldap"  # what the migration (r400) appends to the LDAP-bound user's name


@check("ldap-local-names", "LDAP uids and local users have different names",
       severity=Severity.WARNING,
       remedy="rename one of the two before the upgrade (the local user, or the LDAP uid "
              "bound to the account), or accept the '@ldap' name")
def ldap_local_names(ctx):
    if not crosses(ctx, "4.0.0") or not {"users", "ldap_account_bindings"} <= ctx.facts.tables:
        return None
    shared = ctx.facts.rows(
        "SELECT b.ldap_uid, a.name FROM ldap_account_bindings b "
        "JOIN accounts a ON a.uuid = b.account_uuid WHERE EXISTS (SELECT 1 FROM users u "
        "WHERE u.account_uuid = b.account_uuid AND u.name = b.ldap_uid) "
        "ORDER BY a.name, b.ldap_uid")
    if not shared:
        return None
    listed = ", ".join(f"{uid} (account {acct}) -> {uid}{LDAP_SUFFIX}"
                       for uid, acct in shared[:10])
    more = f" and {len(shared) - 10} more" if len(shared) > 10 else ""
    return (f"{len(shared)} LDAP uids are also the name of a local user of the same account: "
            f"{listed}{more}. Both become Enterprise users of that account; to keep names "
            f"unique per account the LDAP-bound one is named '<uid>{LDAP_SUFFIX}' (it still "
            "logs in with its LDAP uid)")
