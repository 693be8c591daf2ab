"""The MN's REST API against a seeded 4.3.12 cloud: auth, inventory, create/delete, settings,
console caching, API calls in flight. One MN process serves the whole module."""

from __future__ import annotations

import hashlib
import stat
import time

import httpx
import pytest
from mn_kit import finish_call, hold_call, running_mn, seeded_sqlite

from skylift.db.inventory import resource_counts
from skylift.mn.console import CONSOLE_DIR


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mn-api")
    db = seeded_sqlite(folder, "4.3.12", hosts=3, vms=5)
    with running_mn(db, folder / "home") as mn:
        with mn.client() as client:
            yield db, mn, client


def test_token_is_required_except_on_open_paths(cloud):
    db, mn, client = cloud
    token_file = mn.home / "mn" / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    for path in ("/v1/inventory", "/v1/zones", "/v1/global-settings", "/v1/api-calls"):
        resp = httpx.get(mn.url + path)
        assert resp.status_code == 401, path
        assert resp.json()["error"] == "NotAuthorized"
        assert resp.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(mn.url + "/v1/zones", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert mn.token() not in wrong.text
    for path in ("/v1/health", "/v1/version", "/", "/openapi.json", "/v1/console/assets"):
        assert httpx.get(mn.url + path).status_code == 200, path
    version = httpx.get(mn.url + "/v1/version").json()
    assert (version["release"], version["mode"], version["revision"]) == ("4.3.12", "normal",
                                                                          "r4312a")
    assert version["serving"] is True and "4.3.12" in version["reason"]


def test_inventory_reads_every_kind(cloud):
    db, mn, client = cloud
    eng = db.engine()
    with eng.connect() as conn:
        expected = resource_counts(conn)
    eng.dispose()
    full = client.get("/v1/inventory").json()
    for kind in ("zones", "clusters", "hosts", "vm_instances", "volumes", "images",
                 "l3_networks", "accounts", "volume_snapshots", "eips"):
        assert full["counts"][kind] == expected[kind] == len(full["inventory"][kind]), kind
    assert full["counts"]["vpc_vrouters"] == expected["virtual_routers"]
    assert client.get("/v1/inventory/counts").json()["counts"] == expected
    hosts = client.get("/v1/hosts").json()
    assert hosts["total"] == 3 and len(hosts["items"]) == 3
    one = client.get(f"/v1/hosts/{hosts['items'][0]['uuid']}").json()
    assert one == hosts["items"][0]
    page = client.get("/v1/vm_instances", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and page["count"] == 2
    missing = client.get("/v1/hosts/" + "0" * 32)
    assert missing.status_code == 404 and missing.json()["error"] == "NoSuchResource"
    assert client.get("/v1/no_such_kind").status_code == 404


def test_create_and_delete_zone_cluster_storage_networks(cloud):
    db, mn, client = cloud
    zone = client.post("/v1/zones", json={"name": "zone-new"})
    assert zone.status_code == 201
    zone = zone.json()
    cluster = client.post("/v1/clusters", json={"name": "c-new", "zone_uuid": zone["uuid"]})
    assert cluster.status_code == 201 and cluster.json()["qemu_version"] is None
    cluster = cluster.json()
    ps = client.post("/v1/primary_storages", json={"name": "ps-new", "zone_uuid": zone["uuid"],
                                                   "cluster_uuids": [cluster["uuid"]]}).json()
    bs = client.post("/v1/backup_storages", json={"name": "bs-new",
                                                  "zone_uuids": [zone["uuid"]]}).json()
    l2 = client.post("/v1/l2_networks", json={"name": "l2-new", "zone_uuid": zone["uuid"],
                                              "vlan": 100, "cluster_uuids": [cluster["uuid"]]})
    assert l2.status_code == 201
    l3 = client.post("/v1/l3_networks", json={
        "name": "l3-new", "l2_uuid": l2.json()["uuid"], "kind": "vpc",
        "ip_ranges": [{"start_ip": "10.9.0.10", "end_ip": "10.9.0.99", "gateway": "10.9.0.1"}]})
    assert l3.status_code == 201 and l3.json()["type"] == "L3VpcNetwork"
    bad = client.post("/v1/l3_networks", json={"name": "x", "l2_uuid": l2.json()["uuid"],
                                               "kind": "weird"})
    assert bad.status_code == 400 and bad.json()["error"] == "UsageError"
    # a zone that still holds things is refused, naming them
    refused = client.delete(f"/v1/zones/{zone['uuid']}")
    assert refused.status_code == 409
    assert "clusters" in refused.json()["why"]
    assert client.delete(f"/v1/l2_networks/{l2.json()['uuid']}").status_code == 409
    for path in (f"/v1/l3_networks/{l3.json()['uuid']}", f"/v1/l2_networks/{l2.json()['uuid']}",
                 f"/v1/primary_storages/{ps['uuid']}", f"/v1/backup_storages/{bs['uuid']}",
                 f"/v1/clusters/{cluster['uuid']}", f"/v1/zones/{zone['uuid']}"):
        assert client.delete(path).status_code == 200, path
    assert client.get(f"/v1/zones/{zone['uuid']}").status_code == 404
    assert client.delete(f"/v1/zones/{zone['uuid']}").status_code == 404
    invalid = client.post("/v1/clusters", json={"name": "c"})
    assert invalid.status_code == 400 and "zone_uuid" in invalid.json()["why"]


def test_global_settings_set_and_get(cloud):
    db, mn, client = cloud
    listed = client.get("/v1/global-settings").json()["settings"]
    assert {"category": "ha", "name": "enable"}.items() <= listed[0].items() or any(
        s["category"] == "ha" and s["name"] == "enable" for s in listed)
    before = client.get("/v1/global-settings/ha/enable").json()["value"]
    changed = client.put("/v1/global-settings/ha/enable", json={"value": False}).json()
    assert changed["value"] == "false" and changed["previous"] == before
    assert client.get("/v1/global-settings/ha/enable").json()["value"] == "false"
    restored = client.put("/v1/global-settings/ha/enable", json={"value": before}).json()
    assert restored["value"] == before and restored["previous"] == "false"
    bad = client.put("/v1/global-settings/ha/enable", json={"value": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"] == "UsageError"
    assert client.get("/v1/global-settings/ha/nope").status_code == 404


def test_console_page_is_no_cache_and_assets_are_hashed_and_immutable(cloud):
    db, mn, client = cloud
    page = httpx.get(mn.url + "/")
    assert page.headers["cache-control"] == "no-cache"
    listed = httpx.get(mn.url + "/v1/console/assets").json()
    assets = listed["assets"]
    assert listed["release"] == mn.release
    assert set(assets) == {"api.js", "ui.js", "pages.js", "upgrade.js", "app.js", "app.css"}
    for name, url in assets.items():
        assert url in page.text
        resp = httpx.get(mn.url + url)
        assert resp.status_code == 200
        assert resp.headers["cache-control"] == "public, max-age=31536000, immutable"
        # the name is the content's digest; the content is the shipped file, stamped with
        # the release it is served for
        digest = hashlib.sha256(resp.content).hexdigest()
        stem, suffix = name.split(".")
        assert url == f"/static/{stem}.{digest[:12]}.{suffix}"
        assert resp.content.endswith((CONSOLE_DIR / name).read_bytes())
        assert mn.release.encode() in resp.content.splitlines()[0]
        again = httpx.get(mn.url + url, headers={"If-None-Match": resp.headers["etag"]})
        assert again.status_code == 304
    assert httpx.get(mn.url + "/static/app.000000000000.js").status_code == 404
    for name, url in assets.items():  # the page names only hashed names
        assert name not in page.text.replace(url, "")
    spec = httpx.get(mn.url + "/openapi.json").json()
    assert "/v1/zones" in spec["paths"] and "/v1/global-settings/{category}/{name}" in spec["paths"]


def test_api_calls_in_flight_are_listed(cloud):
    db, mn, client = cloud
    body = b'{"value": "90"}'
    held = hold_call(mn, "PUT", "/v1/global-settings/host/pingInterval", body)
    try:
        deadline = time.monotonic() + 5
        while True:
            calls = client.get("/v1/api-calls").json()["calls"]
            if calls or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [(c["method"], c["path"]) for c in calls] == [
            ("PUT", "/v1/global-settings/host/pingInterval")]
        time.sleep(0.2)
        again = client.get("/v1/api-calls").json()["calls"]
        assert again[0]["age"] >= 0.2 and again[0]["started_at"].endswith("Z")
    finally:
        status, _ = finish_call(held, body)
    assert status == 200
    assert client.get("/v1/api-calls").json()["count"] == 0
    assert client.get("/v1/global-settings/host/pingInterval").json()["value"] == "90"
