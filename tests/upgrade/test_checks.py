"""Preflight checks against real databases of older releases (no MN needed for most)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from skylift.engine.checks import run_checks
from skylift.lab.seed import seed
from skylift.upgrade.checks import ALL
from skylift.upgrade.context import UpgradeContext

MN_DOWN = "http://127.0.0.1:9"  # nothing listens on the discard port


def context(db, tmp_path: Path, mn_os: str = "c74") -> UpgradeContext:
    node = tmp_path / "node"
    node.mkdir(exist_ok=True)
    (node / "node.json").write_text(json.dumps({"os": mn_os}))
    return UpgradeContext(db=db, home=tmp_path, mn_url=MN_DOWN, mn_token="t", node_root=node,
                          backup_dir=tmp_path)


def findings(report) -> dict[str, str]:
    return {f.check_id: f.severity.value for f in report.findings}


def test_an_old_cloud_passes_with_notes_for_every_lineage_change(make_db, tmp_path):
    db = make_db("sqlite")
    seed(db, "3.2.0", hosts=4, vms=12)
    ctx = context(db, tmp_path)
    report = run_checks([c for c in ALL if c.id != "api-calls-in-flight"], ctx)
    ctx.close()
    found = findings(report)
    assert report.exit_code == 0
    for info in ("enterprise-management", "ldap-bindings", "vpc-vrouters", "raw-shared-volumes",
                 "libvirt-auto-upgrade", "qemu-expansion", "vm-ha"):
        assert found[info] == "info", info
    assert found["cephx-cdrom-hotplug"] == "warning"
    assert found["ldap-local-names"] == "warning"


def test_hosts_on_another_os_release_block_the_upgrade(make_db, tmp_path):
    db = make_db("sqlite")
    seed(db, "3.7.1", hosts=3, vms=3, os_release="c76")
    ctx = context(db, tmp_path, mn_os="c74")
    report = run_checks(ALL, ctx)
    ctx.close()
    assert report.exit_code == 2
    blocking = [f for f in report.inhibitors if f.check_id == "same-os-release"]
    assert blocking and "c76" in blocking[0].summary
    assert "OS upgrade" in blocking[0].remedy


def test_an_unreachable_mn_blocks_and_says_to_start_it(make_db, tmp_path):
    db = make_db("sqlite")
    seed(db, "4.0.0", hosts=2, vms=2)
    ctx = context(db, tmp_path)
    report = run_checks(ALL, ctx)
    ctx.close()
    mn = [f for f in report.inhibitors if f.check_id == "api-calls-in-flight"]
    assert mn and "start the management node" in mn[0].remedy


def test_changes_already_behind_the_cloud_are_not_reported(make_db, tmp_path):
    db = make_db("sqlite")
    seed(db, "4.0.0", hosts=2, vms=2)
    ctx = context(db, tmp_path)
    found = findings(run_checks([c for c in ALL if c.id != "api-calls-in-flight"], ctx))
    ctx.close()
    for passed in ("enterprise-management", "ldap-bindings", "ldap-local-names",
                   "vpc-vrouters", "cephx-cdrom-hotplug"):
        assert passed not in found, passed


def test_mixed_qemu_in_a_cluster_is_a_warning(make_db, tmp_path):
    db = make_db("mysql")
    seed(db, "3.9.0", hosts=3, vms=3)
    eng = db.engine()
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE hosts SET qemu_version = '4.2.0' WHERE name = 'host-0'"))
    eng.dispose()
    ctx = context(db, tmp_path)
    report = run_checks(ALL, ctx)
    ctx.close()
    mixed = [f for f in report.findings if f.check_id == "qemu-per-cluster"]
    assert mixed and mixed[0].severity.value == "warning" and "4.2.0" in mixed[0].summary


def test_the_check_command_exits_2_on_an_inhibitor(make_db, tmp_path, skylift_home):
    import os
    import subprocess
    import sys

    db = make_db("sqlite")
    seed(db, "3.7.1", hosts=2, vms=2, os_release="c76")
    home = skylift_home
    (home / "mn").mkdir(parents=True, exist_ok=True)
    (home / "mn" / "admin-token").write_text("t")
    (home / "node").mkdir(exist_ok=True)
    (home / "node" / "node.json").write_text(json.dumps({"os": "c74"}))
    out = subprocess.run([sys.executable, "-m", "skylift.cli.main", "upgrade", "check", "--db",
                          db.url.render_as_string(hide_password=False), "--mn-url", MN_DOWN,
                          "--json"], capture_output=True, text=True, env=dict(os.environ),
                         timeout=120)
    assert out.returncode == 2, out.stderr
    body = json.loads(out.stdout)
    assert any(f["check_id"] == "same-os-release" and f["severity"] == "inhibitor"
               for f in body["findings"])


def _only(db, tmp_path, check_id):
    """The findings of one check against this database."""
    ctx = context(db, tmp_path)
    report = run_checks([c for c in ALL if c.id == check_id], ctx)
    ctx.close()
    return report.findings


def _sql(db, *statements, **params):
    eng = db.engine()
    with eng.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)
    eng.dispose()


def test_enterprise_management_counts_platform_admins_apart_from_tenant_admins(make_db,
                                                                              tmp_path):
    db = make_db("sqlite")
    seed(db, "3.7.1", hosts=4, vms=4)
    # The sample: one admin of the admin account; tenant-0 has 3 allow-all users (one direct,
    # two through its group), tenant-1 one.
    [found] = _only(db, tmp_path, "enterprise-management")
    assert "platform admins: 1 " in found.summary
    assert "project admins: 4 " in found.summary
    assert "another account" not in found.summary
    # An allow-all policy of another tenant makes nobody an admin; the check says so.
    _sql(db, "INSERT INTO user_policy_refs (user_uuid, policy_uuid) "
             "SELECT u.uuid, p.uuid FROM users u, policies p WHERE u.name = 'tenant-1-user-2' "
             "AND p.name = 'allow-all' AND p.account_uuid <> u.account_uuid "
             "AND p.account_uuid IN (SELECT uuid FROM accounts WHERE name = 'tenant-0')")
    [found] = _only(db, tmp_path, "enterprise-management")
    assert "platform admins: 1 " in found.summary and "project admins: 4 " in found.summary
    assert "1 users hold an allow-all policy of another account" in found.summary


def test_an_ldap_uid_named_like_a_local_user_is_a_warning(make_db, tmp_path):
    db = make_db("sqlite")
    seed(db, "3.9.0", hosts=2, vms=2)
    # The sample binds tenant-0's LDAP uid 'tenant-0-user-1', the name of a local user there.
    [found] = _only(db, tmp_path, "ldap-local-names")
    assert found.severity.value == "warning"
    assert "tenant-0-user-1 (account tenant-0)" in found.summary
    assert "tenant-0-user-1@ldap" in found.summary
    assert "rename" in found.remedy
    _sql(db, "UPDATE ldap_account_bindings SET ldap_uid = 'alice' "
             "WHERE ldap_uid = 'tenant-0-user-1'")
    assert _only(db, tmp_path, "ldap-local-names") == []
    # A same name in another account is no clash: names are unique per account.
    _sql(db, "UPDATE users SET name = 'alice' WHERE name = 'tenant-1-user-0'")
    assert _only(db, tmp_path, "ldap-local-names") == []


def test_clusters_of_the_same_name_are_told_apart_by_uuid(make_db, tmp_path):
    db = make_db("sqlite")
    seed(db, "3.9.0", hosts=51, vms=2)  # two clusters
    eng = db.engine()
    with eng.connect() as conn:
        first, second = conn.execute(sa.text(
            "SELECT uuid FROM clusters ORDER BY name")).scalars().all()
    eng.dispose()
    _sql(db, "UPDATE clusters SET name = 'prod'",
         "UPDATE hosts SET qemu_version = '2.12.0' WHERE cluster_uuid = :second",
         second=second)
    assert _only(db, tmp_path, "qemu-per-cluster") == []
    _sql(db, "UPDATE hosts SET qemu_version = '4.2.0' WHERE name = 'host-0'")
    [found] = _only(db, tmp_path, "qemu-per-cluster")
    assert found.summary == f"cluster prod ({first}) mixes QEMU 2.9.0, 4.2.0"


def test_libvirt_auto_upgrade_counts_only_hosts_behind_4_9_0(make_db, tmp_path):
    db = make_db("sqlite")
    seed(db, "3.9.0", hosts=3, vms=2)  # c74 hosts with QEMU 2.9 already on libvirt 4.9.0
    assert _only(db, tmp_path, "libvirt-auto-upgrade") == []
    _sql(db, "UPDATE hosts SET libvirt_version = '3.9.0' WHERE name = 'host-1'")
    [found] = _only(db, tmp_path, "libvirt-auto-upgrade")
    assert found.summary == "libvirt will be upgraded to 4.9.0 on 1 c74 hosts with QEMU 2.9"
