"""Preflight checks against real databases of older releases (no MN needed for most)."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from skylift.db.seed import seed
from skylift.engine.checks import run_checks
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
    for passed in ("enterprise-management", "ldap-bindings", "vpc-vrouters",
                   "cephx-cdrom-hotplug"):
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
