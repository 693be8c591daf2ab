"""The calls the console is built on: the overview, search and column filters on lists, who
a token is, the HA members, and the upgrade page's read of the run folder — in normal mode
and in maintenance (an older database), for the admin and for an account."""

from __future__ import annotations

import httpx
import pytest
from mn_kit import running_mn, seeded_sqlite

from skylift.lineage import older_releases


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console-api")
    db = seeded_sqlite(folder, "4.3.12", hosts=6, vms=30)
    with running_mn(db, folder / "home") as mn:
        yield mn, mn.client()


def test_the_overview_groups_what_the_lists_hold(cloud):
    mn, client = cloud
    view = client.get("/v1/overview").json()
    hosts = client.get("/v1/hosts").json()["items"]
    vms = client.get("/v1/vm_instances").json()["items"]
    routers = client.get("/v1/vpc_vrouters").json()["items"]
    assert sum(view["hosts_by_status"].values()) == len(hosts)
    assert view["vms_by_state"] == {s: [v["state"] for v in vms].count(s)
                                    for s in {v["state"] for v in vms}}
    versions = [x["agent_version"] for x in hosts + routers]
    assert view["agents_by_version"] == {v: versions.count(v) for v in set(versions)}
    assert view["counts"]["vm_instances"] == len(vms) and view["release"] == mn.release


def test_search_finds_by_part_of_a_name_any_case_and_wildcards_are_plain_text(cloud):
    _, client = cloud
    vms = client.get("/v1/vm_instances").json()["items"]
    found = client.get("/v1/vm_instances", params={"q": "VM-1"}).json()
    assert found["total"] == len([v for v in vms if "vm-1" in v["name"]]) > 0
    assert {v["name"] for v in found["items"]} == {v["name"] for v in vms if "vm-1" in v["name"]}
    # % and _ are characters to find, not LIKE's wildcards
    for text in ("%", "_", "!"):
        assert client.get("/v1/vm_instances", params={"q": text}).json()["total"] == 0
    by_uuid = client.get("/v1/vm_instances", params={"q": vms[0]["uuid"][:12]}).json()
    assert vms[0]["uuid"] in {v["uuid"] for v in by_uuid["items"]}
    paged = client.get("/v1/vm_instances", params={"q": "vm", "limit": 7, "offset": 7}).json()
    assert paged["count"] == 7 and paged["total"] == len(vms)


def test_column_filters_keep_equal_rows_and_refuse_unknown_or_secret_columns(cloud):
    _, client = cloud
    hosts = client.get("/v1/hosts").json()["items"]
    cluster = hosts[0]["cluster_uuid"]
    same = client.get("/v1/hosts", params={"cluster_uuid": cluster}).json()
    assert {h["uuid"] for h in same["items"]} == {h["uuid"] for h in hosts
                                                  if h["cluster_uuid"] == cluster}
    for bad in ({"colour": "red"}, {"password_hash": "x"}):
        resp = client.get("/v1/accounts", params=bad)
        assert resp.status_code == 400, bad
        body = resp.json()
        assert body["what"] == f"accounts has no column '{next(iter(bad))}' to filter on"
        assert "name" in body["next"] and "password_hash" not in body["next"]
    too_long = client.get("/v1/hosts", params={"q": "x" * 129})
    assert too_long.status_code == 400 and "q" in too_long.json()["why"]


def test_session_says_who_a_token_is_and_never_which_token(cloud):
    mn, client = cloud
    assert client.get("/v1/session").json() == {"admin": True, "account_uuid": None}
    account = next(a for a in client.get("/v1/accounts").json()["items"]
                   if a["type"] != "SystemAdmin")
    token = client.post(f"/v1/accounts/{account['uuid']}/tokens", json={}).json()["token"]
    as_account = {"Authorization": f"Bearer {token}"}
    me = httpx.get(mn.url + "/v1/session", headers=as_account).json()
    assert me == {"admin": False, "account_uuid": account["uuid"]}
    # the admin's pages are the admin's
    for path in ("/v1/overview", "/v1/upgrade", "/v1/hosts", "/v1/global-settings"):
        assert httpx.get(mn.url + path, headers=as_account).status_code == 403, path
    assert httpx.get(mn.url + "/v1/session").status_code == 401


def test_a_lone_mn_has_no_ha_members_and_no_upgrade_yet(cloud):
    _, client = cloud
    cluster = client.get("/v1/cluster").json()
    assert (cluster["ha"], cluster["members"], cluster["holds_vip"]) == (False, [], False)
    assert client.get("/v1/upgrade").json() == {"run": None}


def test_the_upgrade_page_and_who_is_signed_in_are_served_in_maintenance(tmp_path):
    rel = older_releases()[-1].version
    db = seeded_sqlite(tmp_path / "db", rel)
    with running_mn(db, tmp_path / "home") as mn, mn.client() as client:
        assert client.get("/v1/version").json()["mode"] == "maintenance"
        assert client.get("/v1/upgrade").status_code == 200
        assert client.get("/v1/session").json()["admin"] is True
        assert client.get("/v1/console/assets").json()["release"] == mn.release
        assert client.get("/v1/overview").status_code == 503  # it reads the newest tables
