"""Ownership and roles survive the lineage: a cloud of an older release, migrated to the
newest on every dialect, has every resource a tenant can own recorded as the admin
account's (who alone could act on it before), and the Enterprise Management migration keeps
each user's account, each role's account and every grant of a role.

Read with plain SQL over both shapes of the schema, independently of the migrations.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from skylift.db.migrate import migrate
from skylift.lab.seed import seed
from skylift.lineage import NEWEST
from skylift.mn.access import OWNABLE

DIALECTS = ["sqlite", "mysql", "postgresql"]


def _rows(conn, sql: str) -> set[tuple]:
    return {tuple(r) for r in conn.execute(sa.text(sql))}


def _roles(conn) -> dict[str, set[tuple]]:
    """Users and roles with their accounts, and the grants, in whichever shape is there."""
    if "users" in sa.inspect(conn).get_table_names():
        return {"users": _rows(conn, "SELECT uuid, account_uuid, name FROM users"),
                "roles": _rows(conn, "SELECT uuid, account_uuid, actions FROM policies"),
                "user_grants": _rows(conn, "SELECT user_uuid, policy_uuid FROM user_policy_refs"),
                "group_grants": _rows(conn, "SELECT group_uuid, policy_uuid "
                                            "FROM user_group_policy_refs")}
    return {"users": _rows(conn, "SELECT uuid, account_uuid, name FROM em_users "
                                 "WHERE source = 'local'"),
            "roles": _rows(conn, "SELECT uuid, account_uuid, actions FROM em_roles"),
            "user_grants": _rows(conn, "SELECT user_uuid, role_uuid FROM em_user_roles"),
            "group_grants": _rows(conn, "SELECT group_uuid, role_uuid "
                                        "FROM em_member_group_roles")}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("old", ["3.9.0", "4.0.0"])
def test_the_lineage_keeps_roles_and_gives_every_resource_an_owner(make_db, dialect, old):
    db = make_db(dialect)
    seed(db, old, hosts=2, vms=6)
    eng = db.engine()
    try:
        with eng.connect() as conn:
            before = _roles(conn)
            assert "account_resource_refs" not in sa.inspect(conn).get_table_names()
        migrate(db, NEWEST.version)
        with eng.connect() as conn:
            after = _roles(conn)
            admin = conn.execute(sa.text(
                "SELECT uuid FROM accounts WHERE type = 'SystemAdmin'")).scalar_one()
            owners = {}
            for kind in OWNABLE:
                resources = _rows(conn, f"SELECT uuid FROM {kind}")
                refs = _rows(conn, "SELECT resource_uuid, account_uuid FROM "
                                   f"account_resource_refs WHERE resource_type = '{kind}'")
                owners[kind] = (resources, refs)
            projects = _rows(conn, "SELECT p.linked_account_uuid, a.type FROM em_projects p "
                                   "JOIN accounts a ON a.uuid = p.linked_account_uuid")
    finally:
        eng.dispose()
    assert after == before
    assert before["users"] and before["roles"] and before["user_grants"]
    assert {account for _, account, _ in after["users"]} > {admin}, "tenants' users kept"
    for kind, (resources, refs) in owners.items():
        assert resources, f"the sample cloud has {kind}"
        assert refs == {(uuid, admin) for (uuid,) in resources}, kind
    assert projects and all(kind == "Normal" for _, kind in projects)
