"""Maintenance mode (R-CON-2): an MN on a database of every older release serves health,
version, global settings and drain, and answers 503 "upgrade in progress" to the rest."""

from __future__ import annotations

import httpx
import pytest
from mn_kit import heartbeats, running_mn, seeded_sqlite

from skylift.lab.seed import seed
from skylift.lineage import NEWEST, older_releases, release

OLDER = [r.version for r in older_releases()]


def check_maintenance(db, mn, rel: str, serving: bool = True) -> None:
    """serving: what /v1/version says (true for the maintenance of an upgrade, false when
    asked for with --maintenance; the VIP's health check follows it)."""
    with mn.client() as client:
        for method, path in (("GET", "/v1/inventory"), ("GET", "/v1/zones"),
                             ("POST", "/v1/zones"), ("DELETE", "/v1/hosts/abc"),
                             ("GET", "/v1/inventory/counts")):
            resp = client.request(method, path, json={"name": "z"})
            assert resp.status_code == 503, (method, path)
            body = resp.json()
            assert (body["error"], body["what"]) == ("UpgradeInProgress", "upgrade in progress")
            assert body["next"] and int(resp.headers["retry-after"]) > 0
        health = httpx.get(mn.url + "/v1/health")
        assert health.status_code == 200 and health.json()["mode"] == "maintenance"
        version = httpx.get(mn.url + "/v1/version").json()
        assert (version["release"], version["mode"]) == (rel, "maintenance")
        assert version["serving"] is serving and version["reason"]
        assert version["revision"] == release(rel).revision
        assert client.get("/v1/global-settings").status_code == 200
        ha = client.get("/v1/global-settings/ha/enable").json()["value"]
        flipped = "false" if ha == "true" else "true"
        put = client.put("/v1/global-settings/ha/enable", json={"value": flipped})
        assert put.status_code == 200 and put.json()["previous"] == ha
        assert client.get("/v1/global-settings/ha/enable").json()["value"] == flipped
        assert client.get("/v1/api-calls").status_code == 200
        assert httpx.get(mn.url + "/").status_code == 200  # the console says "upgrade in progress"
        # the token is still needed in maintenance
        assert httpx.get(mn.url + "/v1/global-settings").status_code == 401
        assert httpx.get(mn.url + "/v1/inventory").status_code == 401
    assert [(r["state"], r["version"]) for r in heartbeats(db)] == [("maintenance", rel)]


@pytest.mark.parametrize("rel", OLDER)
def test_an_mn_on_an_older_database_runs_in_maintenance(rel, tmp_path):
    db = seeded_sqlite(tmp_path, rel, hosts=2, vms=2)
    with running_mn(db, tmp_path / "home") as mn:
        assert mn.mode == "maintenance" and mn.release == rel
        check_maintenance(db, mn, rel)
    assert [r["state"] for r in heartbeats(db)] == ["stopped"]


@pytest.mark.parametrize("dialect,rel", [("mysql", OLDER[0]), ("postgresql", OLDER[-1])])
def test_maintenance_on_server_databases(dialect, rel, make_db, tmp_path):
    db = make_db(dialect)
    seed(db, rel, 2, 2)
    with running_mn(db, tmp_path / "home") as mn:
        check_maintenance(db, mn, rel)


def test_maintenance_asked_for_on_the_newest_database(tmp_path):
    db = seeded_sqlite(tmp_path, NEWEST.version, hosts=1, vms=0)
    with running_mn(db, tmp_path / "home", maintenance=True) as mn:
        check_maintenance(db, mn, NEWEST.version, serving=False)
        assert httpx.get(mn.url + "/v1/version").json()["reason"] == "started with --maintenance"


def test_the_release_reported_can_be_set(tmp_path):
    db = seeded_sqlite(tmp_path, "3.7.1", hosts=1, vms=0)
    with running_mn(db, tmp_path / "home", release="3.7.1") as mn:
        assert httpx.get(mn.url + "/v1/version").json()["release"] == "3.7.1"


def test_maintenance_never_loads_the_newest_models(tmp_path):
    """The maintenance app is built without importing skylift.db.models (Core only)."""
    import subprocess
    import sys

    db = seeded_sqlite(tmp_path, OLDER[0], hosts=1, vms=0)
    code = ("import sys\n"
            "from skylift.db.engine import Database\n"
            "from skylift.mn.server import build_state\n"
            "from skylift.mn.app import create_app\n"
            f"mn = build_state(Database.from_string({str(db.url)!r}))\n"
            "create_app(mn)\n"
            "assert mn.run.maintenance\n"
            "print('skylift.db.models' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"SKYLIFT_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
