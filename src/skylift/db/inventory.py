"""Counting a cloud's resources by kind, at any release of the lineage.

The lineage renames some resources (legacy vRouters become VPC vRouters, users become
Enterprise users, ...); a kind names the resource, whatever table holds it at a revision, so
counts taken before and after an upgrade can be compared directly. Reads through SQLAlchemy
Core and reflection only, never the newest models.
"""

from __future__ import annotations

import sqlalchemy as sa

# kind -> tables that hold it, in lineage order (the first one present is used), each with an
# optional filter column/value.
KINDS: dict[str, list[tuple[str, tuple[str, str] | None]]] = {
    kind: [(kind, None)] for kind in (
        "zones", "clusters", "hosts", "primary_storages", "backup_storages", "l2_networks",
        "l3_networks", "ip_ranges", "images", "instance_offerings", "disk_offerings",
        "vm_instances", "volumes", "vm_nics", "volume_snapshots", "security_groups",
        "security_group_rules", "vips", "eips", "accounts", "policies", "ldap_servers")
}
KINDS.update({
    "virtual_routers": [("virtual_routers", None), ("vpc_vrouters", None)],
    "virtual_router_attachments": [("virtual_router_l3_refs", None),
                                   ("vpc_vrouter_l3_refs", None)],
    "users": [("users", None), ("em_users", ("source", "local"))],
    "user_groups": [("user_groups", None), ("em_member_groups", None)],
    "group_memberships": [("user_group_user_refs", None), ("em_member_group_users", None)],
    "ldap_bindings": [("ldap_account_bindings", None), ("em_ldap_bindings", None)],
})


def resource_counts(conn: sa.Connection) -> dict[str, int]:
    """Row count of every resource kind present in the database."""
    present = set(sa.inspect(conn).get_table_names())
    counts: dict[str, int] = {}
    for kind, places in KINDS.items():
        for table, where in places:
            if table not in present:
                continue
            query = sa.select(sa.func.count()).select_from(sa.table(table))
            if where:
                query = query.where(sa.column(where[0]) == where[1])
            counts[kind] = conn.execute(query).scalar_one()
            break
    return counts


def table_counts(conn: sa.Connection) -> dict[str, int]:
    """Row count of every table (alembic_version excluded)."""
    names = [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
    return {t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one()
            for t in sorted(names)}


def resource_keys(conn: sa.Connection) -> dict[str, list[str]]:
    """The sorted primary keys of every resource kind (composite keys joined by \\x1f).

    The lineage keeps UUIDs (and the key pairs of attachments and memberships) when it moves
    a resource to a new table, so the same keys before and after an upgrade mean the very
    same resources are there, not merely as many.
    """
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    found: dict[str, list[str]] = {}
    for kind, places in KINDS.items():
        for table, where in places:
            if table not in present:
                continue
            keys = inspector.get_pk_constraint(table)["constrained_columns"]
            query = sa.select(*[sa.column(k) for k in keys]).select_from(sa.table(table))
            if where:
                query = query.where(sa.column(where[0]) == where[1])
            found[kind] = sorted("\x1f".join(str(v) for v in row) for row in conn.execute(query))
            break
    return found


def digest_of(keys: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def resource_digests(conn: sa.Connection) -> dict[str, str]:
    """A digest of every resource kind: sha256 over its sorted primary keys (resource_keys)."""
    return {kind: digest_of(keys) for kind, keys in resource_keys(conn).items()}
