"""Property-based tests of the 4.0.0 data migration on random small inventories.

Accounts, users, groups, policies and their links are drawn at random, cross-account links
included, so the admin rule is tried on shapes the sample cloud never has: only an allow-all
policy of the user's own account makes an admin, and only the admin account's users become
platform admins. Names come from a small pool, so local users and LDAP uids often clash.
"""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity_facts import identity_facts, shared_names
from lineage_facts import router_facts
from skylift.db.engine import Database
from skylift.db.migrate import migrate


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """An empty database at 3.9.0 (the release before the identity change), made once."""
    path = tmp_path_factory.mktemp("tmpl") / "r390.db"
    migrate(Database.from_string(f"sqlite:///{path}"), "3.9.0")
    return path


def uid(prefix: str, i: int) -> str:
    return f"{prefix}{i:0>{32 - len(prefix)}}"


names = st.sampled_from(["alice", "bob", "x", "a-b"]) | st.text("abcxyz-", min_size=1,
                                                                max_size=8)
inventories = st.fixed_dictionaries({
    "accounts": st.integers(1, 4),
    "users": st.lists(st.tuples(st.integers(0, 3), names), max_size=12),
    "groups": st.lists(st.integers(0, 3), max_size=5),
    "policies": st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["Allow", "Deny"]),
                                   st.sampled_from(["**", "instance:*", "volume:Query*"])),
                         max_size=6),
    "memberships": st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=20),
    "user_policies": st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=20),
    "group_policies": st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=10),
    "ldap": st.lists(st.tuples(st.integers(0, 3), names), max_size=5),
    "routers": st.lists(st.integers(0, 3), max_size=4),
})


def _fill(conn, inv: dict) -> None:
    ins = lambda table, rows: rows and conn.execute(  # noqa: E731
        sa.table(table, *[sa.column(c) for c in rows[0]]).insert(), rows)
    n_acc = inv["accounts"]
    accounts = [{"uuid": uid("a", i), "name": f"acct{i}",
                 "type": "SystemAdmin" if i == 0 else "Normal", "password_hash": "x"}
                for i in range(n_acc)]
    ins("accounts", accounts)
    users = [{"uuid": uid("u", i), "account_uuid": uid("a", a % n_acc), "name": name,
              "password_hash": "h"} for i, (a, name) in enumerate(inv["users"])]
    ins("users", users)
    groups = [{"uuid": uid("g", i), "account_uuid": uid("a", a % n_acc), "name": f"grp{i}"}
              for i, a in enumerate(inv["groups"])]
    ins("user_groups", groups)
    policies = [{"uuid": uid("p", i), "account_uuid": uid("a", a % n_acc), "name": f"p{i}",
                 "effect": eff, "actions": act} for i, (a, eff, act) in enumerate(inv["policies"])]
    ins("policies", policies)

    def pairs(raw, left, right, lkey, rkey):
        if not left or not right:
            return []
        seen = {(left[i % len(left)]["uuid"], right[j % len(right)]["uuid"]) for i, j in raw}
        return [{lkey: a, rkey: b} for a, b in sorted(seen)]

    ins("user_group_user_refs", pairs(inv["memberships"], groups, users, "group_uuid",
                                      "user_uuid"))
    ins("user_policy_refs", pairs(inv["user_policies"], users, policies, "user_uuid",
                                  "policy_uuid"))
    ins("user_group_policy_refs", pairs(inv["group_policies"], groups, policies,
                                        "group_uuid", "policy_uuid"))
    ins("ldap_servers", [{"uuid": uid("s", 0), "name": "ldap", "url": "ldap://x",
                          "base_dn": "dc=x", "username": "r", "encryption": "None"}])
    ins("ldap_account_bindings", [
        {"uuid": uid("b", i), "ldap_server_uuid": uid("s", 0), "ldap_uid": name,
         "account_uuid": uid("a", a % n_acc)} for i, (a, name) in enumerate(inv["ldap"])])
    if inv["routers"]:
        ins("zones", [{"uuid": uid("z", 0), "name": "z", "state": "Enabled"}])
        ins("clusters", [{"uuid": uid("c", 0), "zone_uuid": uid("z", 0), "name": "c",
                          "hypervisor_type": "KVM", "state": "Enabled"}])
        ins("l2_networks", [{"uuid": uid("l2", 0), "zone_uuid": uid("z", 0), "name": "l2",
                             "type": "L2NoVlanNetwork", "physical_interface": "eth0"}])
        ins("l3_networks", [{"uuid": uid("l3", i), "l2_uuid": uid("l2", 0),
                             "zone_uuid": uid("z", 0), "name": f"n{i}", "category": "Private",
                             "type": "L3VRouterNetwork"} for i in range(4)])
        ins("virtual_routers", [
            {"uuid": uid("r", i), "name": f"vr{i}", "zone_uuid": uid("z", 0),
             "cluster_uuid": uid("c", 0), "management_ip": f"1.1.1.{i}",
             "public_l3_uuid": uid("l3", 0), "management_l3_uuid": uid("l3", 1),
             "state": "Running", "status": "Connected", "agent_version": "3.9.0"}
            for i in range(len(inv["routers"]))])
        ins("virtual_router_l3_refs", [
            {"vr_uuid": uid("r", i), "l3_uuid": uid("l3", j), "nic_ip": f"10.{i}.{j}.1"}
            for i, extra in enumerate(inv["routers"]) for j in sorted({0, 1, extra})])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inv=inventories)
def test_identity_and_router_migration_preserves_meaning(template, tmp_path, inv):
    path = tmp_path / "case.db"
    shutil.copy(template, path)
    db = Database.from_string(f"sqlite:///{path}")
    eng = db.engine()
    with eng.begin() as conn:
        _fill(conn, inv)
    with eng.connect() as conn:
        before = identity_facts(conn), router_facts(conn)
    migrate(db, "4.0.0")
    with eng.connect() as conn:
        after = identity_facts(conn), router_facts(conn)
        ldap_users = conn.execute(sa.text(
            "SELECT COUNT(*) FROM em_users WHERE source = 'ldap'")).scalar_one()
        shared = shared_names(conn)
        tenant_platform_admins = conn.execute(sa.text(
            "SELECT COUNT(*) FROM em_users u JOIN accounts a ON a.uuid = u.account_uuid "
            "WHERE u.is_platform_admin = :t AND a.type <> 'SystemAdmin'"),
            {"t": True}).scalar_one()
    eng.dispose()
    path.unlink()
    assert after == before
    assert ldap_users == len(inv["ldap"])
    assert shared == []
    assert tenant_platform_admins == 0
