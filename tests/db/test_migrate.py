"""Every older release migrates to the newest on every dialect, losing nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from identity_facts import LDAP_SUFFIX, identity_facts, shared_names
from lineage_facts import router_facts
from skylift.db.inventory import resource_counts, resource_digests, table_counts
from skylift.db.migrate import migrate, status
from skylift.db.models import metadata
from skylift.errors import Refused
from skylift.lab.seed import seed
from skylift.lineage import NEWEST, older_releases

DIALECTS = ["sqlite", "mysql", "postgresql"]


def _snapshot(db):
    eng = db.engine()
    with eng.connect() as conn:
        snap = {"counts": resource_counts(conn), "digests": resource_digests(conn),
                "identity": identity_facts(conn),
                "routers": router_facts(conn), "tables": table_counts(conn)}
    eng.dispose()
    return snap


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("old", [r.version for r in older_releases()])
def test_old_release_upgrades_to_newest_losing_nothing(make_db, dialect, old):
    db = make_db(dialect)
    seed(db, old, hosts=12, vms=60)
    before = _snapshot(db)
    assert status(db).release == old

    result = migrate(db, NEWEST.version)

    assert result.from_release == old and result.to_release == NEWEST.version
    assert status(db).release == NEWEST.version
    after = _snapshot(db)
    assert after["counts"] == before["counts"]
    # the very same resources, by primary key, whatever table holds them now
    assert after["digests"] == before["digests"]
    # every legacy vRouter is a VPC vRouter with the same UUID, name and attachments
    assert after["routers"] == before["routers"]
    assert before["routers"]["routers"], "the sample cloud has vRouters"
    # every user is an Enterprise user: same uuid, name, account, groups; the admin
    # account's admins are platform admins, a tenant's admins administer its project only
    assert after["identity"] == before["identity"]
    assert before["identity"]["platform_admins"], "the sample cloud has platform admins"
    assert before["identity"]["project_admins"], "the sample cloud has tenant admins"
    assert before["identity"]["ldap"], "the sample cloud has LDAP bindings"
    assert any(name.endswith(LDAP_SUFFIX) for *_, name in before["identity"]["ldap"]), \
        "the sample cloud has an LDAP uid named like a local user of its account"
    eng = db.engine()
    with eng.connect() as conn:
        vrouter_nets = conn.execute(sa.text(
            "SELECT COUNT(*) FROM l3_networks WHERE type = 'L3VRouterNetwork'")).scalar_one()
        vpc_nets = conn.execute(sa.text(
            "SELECT COUNT(*) FROM l3_networks WHERE type = 'L3VpcNetwork'")).scalar_one()
        qemu = conn.execute(sa.text("SELECT qemu_version FROM clusters")).scalars().all()
        update_setting = conn.execute(sa.text(
            "SELECT value FROM global_settings WHERE category = 'host' "
            "AND name = 'updatePkgWhenConnect'")).scalar_one()
        ha = conn.execute(sa.text(
            "SELECT value FROM global_settings WHERE category = 'ha' AND name = 'enable'"
        )).scalar_one()
        tenant_platform_admins = conn.execute(sa.text(
            "SELECT u.name FROM em_users u JOIN accounts a ON a.uuid = u.account_uuid "
            "WHERE u.is_platform_admin = :t AND a.type <> 'SystemAdmin'"),
            {"t": True}).scalars().all()
        shared = shared_names(conn)
    eng.dispose()
    assert tenant_platform_admins == []
    assert shared == []
    assert vrouter_nets == 0 and vpc_nets > 0
    assert qemu and all(qemu)
    assert update_setting == "true"
    assert ha == "true"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_downgrade_is_refused_and_changes_nothing(make_db, dialect):
    db = make_db(dialect)
    seed(db, "4.0.0", hosts=3, vms=10)
    before = _snapshot(db)
    with pytest.raises(Refused) as err:
        migrate(db, "3.9.0")
    assert "downgrade" in err.value.what and "4.0.0" in err.value.what
    assert err.value.exit_code == 2
    assert status(db).revision == "r400"
    assert _snapshot(db) == before


@pytest.mark.parametrize("dialect", DIALECTS)
def test_migrated_schema_is_the_newest_models(make_db, dialect):
    db = make_db(dialect)
    migrate(db, NEWEST.version)
    eng = db.engine()
    with eng.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, metadata)
    eng.dispose()
    assert diffs == []


def test_dry_run_changes_nothing(make_db):
    db = make_db("sqlite")
    seed(db, "3.2.0", hosts=2, vms=4)
    result = migrate(db, NEWEST.version, dry_run=True)
    assert [r.revision for r in result.revisions][-1] == NEWEST.revision
    assert status(db).release == "3.2.0"


def test_same_release_is_a_no_op(make_db):
    db = make_db("sqlite")
    seed(db, NEWEST.version, hosts=2, vms=4)
    assert migrate(db, NEWEST.version).revisions == []


def test_seed_refuses_a_database_that_is_not_empty(make_db):
    db = make_db("sqlite")
    seed(db, "3.2.0", hosts=2, vms=4)
    with pytest.raises(Refused, match="not empty"):
        seed(db, "3.2.0", hosts=2, vms=4)


def test_seed_scales_with_the_requested_size(make_db):
    db = make_db("sqlite")
    result = seed(db, "3.7.1", hosts=120, vms=900)
    assert result.counts["hosts"] == 120
    assert result.counts["vm_instances"] == 900
    assert result.counts["volumes"] >= 900 + 450
    assert result.counts["clusters"] == 3
    assert result.counts["volume_snapshots"] == 300
