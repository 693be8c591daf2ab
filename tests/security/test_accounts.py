"""Accounts are real: an account's token sees and changes only its own resources, the admin
sees all, tokens expire and can be revoked, the admin token can be rotated, and failed
authentications are rate limited per client address.

One real MN process serves a seeded 4.3.12 cloud (SQLite). The seed gives every VM and
volume to the admin account (the migration's backfill); the module gives two VMs each to
two tenant accounts by rewriting their owner rows, as an ownership change would. Its hosts
have no agents, so a VM action the owner may make stops at "host not connected" (409) —
past the owner check, which answers 404 for anyone else.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from skylift.agent.launch import free_port
from skylift.db.engine import Database
from skylift.lab.seed import seed
from skylift.mn.access import OWNABLE
from skylift.mn.auth_limit import FailureLimiter
from skylift.mn.launch import start_mn, stop_mn


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """(db, MN handle, {account name: uuid}, {tenant name: [its VM uuids]})."""
    folder = tmp_path_factory.mktemp("mn-accounts")
    db = Database.from_string(f"sqlite:///{folder / 'cloud.db'}")
    seed(db, "4.3.12", 2, 8)
    eng = db.engine()
    with eng.begin() as conn:
        accounts = dict(conn.execute(sa.text("SELECT name, uuid FROM accounts")).all())
        vms = conn.execute(sa.text("SELECT uuid FROM vm_instances ORDER BY uuid")).scalars().all()
        owned = {"tenant-0": vms[0:2], "tenant-1": vms[2:4]}
        for name, uuids in owned.items():
            for uuid in uuids:
                conn.execute(sa.text("UPDATE account_resource_refs SET account_uuid = :a "
                                     "WHERE resource_type = 'vm_instances' "
                                     "AND resource_uuid = :u"), {"a": accounts[name], "u": uuid})
    eng.dispose()
    handle = start_mn(db.url.render_as_string(hide_password=False), port=free_port(),
                      env={"SKYLIFT_HOME": str(folder / "home")})
    try:
        yield db, handle, accounts, owned
    finally:
        stop_mn(handle)


def _admin(mn) -> httpx.Client:
    return mn.client(timeout=30)  # reads the admin-token file now (it may have been rotated)


def _issue(mn, account_uuid: str, **body) -> dict:
    with _admin(mn) as admin:
        resp = admin.post(f"/v1/accounts/{account_uuid}/tokens", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _as(mn, token: str, source: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=mn.url, timeout=30, transport=transport,
                        headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def tenants(cloud):
    """A token of tenant-0 and one of tenant-1."""
    db, mn, accounts, owned = cloud
    return {name: _issue(mn, accounts[name])["token"] for name in ("tenant-0", "tenant-1")}


def _rows(db, sql: str, **params) -> list:
    eng = db.engine()
    try:
        with eng.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        eng.dispose()


# -- ownership -----------------------------------------------------------------------------

def test_an_account_lists_only_its_own_vms_and_the_admin_all(cloud, tenants):
    db, mn, accounts, owned = cloud
    for name, token in tenants.items():
        with _as(mn, token) as client:
            listed = client.get("/v1/vm_instances")
        assert listed.status_code == 200
        assert sorted(vm["uuid"] for vm in listed.json()["items"]) == sorted(owned[name])
        assert listed.json()["total"] == 2
    with _admin(mn) as admin:
        assert admin.get("/v1/vm_instances").json()["total"] == 8


def test_an_account_reads_its_own_vm_and_gets_404_for_anothers(cloud, tenants):
    db, mn, accounts, owned = cloud
    mine, theirs = owned["tenant-0"][0], owned["tenant-1"][0]
    with _as(mn, tenants["tenant-0"]) as client:
        assert client.get(f"/v1/vm_instances/{mine}").status_code == 200
        other = client.get(f"/v1/vm_instances/{theirs}")
        missing = client.get("/v1/vm_instances/" + "0" * 32)
    assert other.status_code == 404 and missing.status_code == 404
    # the same answer as for a VM that does not exist: nothing leaks
    assert other.json()["error"] == missing.json()["error"] == "NoSuchResource"
    assert other.json()["what"].replace(theirs, "X") == missing.json()["what"].replace("0" * 32, "X")


def test_an_account_cannot_stop_or_delete_another_accounts_vm(cloud, tenants):
    db, mn, accounts, owned = cloud
    theirs = owned["tenant-1"][0]
    with _as(mn, tenants["tenant-0"]) as client:
        for action in ("stop", "start", "reboot"):
            resp = client.post(f"/v1/vm_instances/{theirs}/{action}")
            assert resp.status_code == 404, (action, resp.text)
        assert client.delete(f"/v1/vm_instances/{theirs}").status_code == 404
    with _admin(mn) as admin:
        assert admin.get(f"/v1/vm_instances/{theirs}").status_code == 200  # still there
    # its owner gets past the owner check: stopped only because the host has no agent here
    with _as(mn, tenants["tenant-1"]) as client:
        resp = client.post(f"/v1/vm_instances/{theirs}/stop")
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"] in ("HostDisconnected", "HostReconnecting")


def test_an_account_creates_deletes_and_attaches_only_its_own_volumes(cloud, tenants):
    db, mn, accounts, owned = cloud
    ps = _rows(db, "SELECT uuid FROM primary_storages ORDER BY uuid")[0].uuid
    with _as(mn, tenants["tenant-0"]) as mine, _as(mn, tenants["tenant-1"]) as other:
        made = mine.post("/v1/volumes", json={"name": "t0-data", "ps_uuid": ps, "size": 1 << 30})
        assert made.status_code == 201, made.text
        vol = made.json()["uuid"]
        assert _rows(db, "SELECT account_uuid FROM account_resource_refs WHERE "
                         "resource_type = 'volumes' AND resource_uuid = :u", u=vol)[0][0] \
            == accounts["tenant-0"]
        assert vol in [v["uuid"] for v in mine.get("/v1/volumes").json()["items"]]
        assert vol not in [v["uuid"] for v in other.get("/v1/volumes").json()["items"]]
        assert other.get(f"/v1/volumes/{vol}").status_code == 404
        assert other.delete(f"/v1/volumes/{vol}").status_code == 404
        # another account's VM is not there for it either
        attach = mine.post(f"/v1/volumes/{vol}/attach",
                           json={"vm_uuid": owned["tenant-1"][0]})
        assert attach.status_code == 404, attach.text
        # it creates only for itself
        forged = mine.post("/v1/volumes", json={"name": "x", "ps_uuid": ps, "size": 1 << 30,
                                                "account_uuid": accounts["tenant-1"]})
        assert forged.status_code == 403
        assert mine.delete(f"/v1/volumes/{vol}").status_code == 200
    assert _rows(db, "SELECT * FROM account_resource_refs WHERE resource_uuid = :u", u=vol) == []


def test_the_admin_creates_for_an_account_that_then_sees_it(cloud, tenants):
    db, mn, accounts, owned = cloud
    ps = _rows(db, "SELECT uuid FROM primary_storages ORDER BY uuid")[0].uuid
    with _admin(mn) as admin:
        made = admin.post("/v1/volumes", json={"name": "for-t1", "ps_uuid": ps,
                                               "size": 1 << 30,
                                               "account_uuid": accounts["tenant-1"]})
        assert made.status_code == 201, made.text
        own = admin.post("/v1/volumes", json={"name": "admins", "ps_uuid": ps, "size": 1 << 30})
    vol = made.json()["uuid"]
    with _as(mn, tenants["tenant-1"]) as client:
        assert client.get(f"/v1/volumes/{vol}").status_code == 200
        assert client.get(f"/v1/volumes/{own.json()['uuid']}").status_code == 404
    assert _rows(db, "SELECT account_uuid FROM account_resource_refs WHERE resource_uuid = :u",
                 u=own.json()["uuid"])[0][0] == accounts["admin"]


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/hosts"), ("GET", "/v1/zones"), ("GET", "/v1/global-settings"),
    ("PUT", "/v1/global-settings/ha/enable"), ("GET", "/v1/ha"), ("GET", "/v1/connections"),
    ("POST", "/v1/connections/converge"), ("GET", "/v1/inventory"),
    ("GET", "/v1/inventory/counts"), ("GET", "/v1/accounts"), ("GET", "/v1/em_users"),
    ("GET", "/v1/api_tokens"), ("GET", "/v1/api-calls"), ("POST", "/v1/drain"),
    ("POST", "/v1/hosts"), ("DELETE", "/v1/zones/" + "1" * 32), ("POST", "/v1/images"),
    ("DELETE", "/v1/images/" + "1" * 32), ("POST", "/v1/tokens/rotate"),
    ("POST", "/v1/accounts/{me}/tokens"), ("POST", "/v1/vm_instances/{vm}/migrate")])
def test_admin_routes_refuse_an_accounts_token_with_403(cloud, tenants, method, path):
    db, mn, accounts, owned = cloud
    path = path.format(me=accounts["tenant-0"], vm=owned["tenant-0"][0])
    with _as(mn, tenants["tenant-0"]) as client:
        resp = client.request(method, path, json={"value": "false"})
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "Forbidden"
    with _admin(mn) as admin:
        assert admin.get("/v1/health").json()["mode"] == "normal"  # nothing drained


# -- tokens --------------------------------------------------------------------------------

def test_a_token_is_shown_once_and_stored_only_as_its_sha256(cloud):
    db, mn, accounts, owned = cloud
    issued = _issue(mn, accounts["tenant-0"])
    stored = _rows(db, "SELECT token_hash, expires_at FROM api_tokens WHERE uuid = :u",
                   u=issued["uuid"])[0]
    assert stored.token_hash == hashlib.sha256(issued["token"].encode()).hexdigest()
    with _admin(mn) as admin:
        listed = admin.get("/v1/tokens").text + admin.get("/v1/api_tokens").text
    assert issued["token"] not in listed and stored.token_hash not in listed
    assert issued["token"] not in mn.log_path.read_text()


def test_a_token_expires_after_its_ttl_default_24_hours(cloud):
    db, mn, accounts, owned = cloud
    issued = _issue(mn, accounts["tenant-0"])
    expires = dt.datetime.fromisoformat(issued["expires_at"].rstrip("Z"))
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert abs((expires - now).total_seconds() - 24 * 3600) < 60
    tokens = sa.table("api_tokens", sa.column("uuid"), sa.column("expires_at", sa.DateTime))
    with _as(mn, issued["token"]) as client:
        assert client.get("/v1/vm_instances").status_code == 200
        eng = db.engine()
        with eng.begin() as conn:
            conn.execute(tokens.update().where(tokens.c.uuid == issued["uuid"])
                         .values(expires_at=now - dt.timedelta(seconds=1)))
        eng.dispose()
        expired = client.get("/v1/vm_instances")
    assert expired.status_code == 401
    assert expired.json()["error"] == "NotAuthorized"
    with _admin(mn) as admin:
        too_long = admin.post(f"/v1/accounts/{accounts['tenant-0']}/tokens",
                              json={"ttl_seconds": 31 * 86400})
    assert too_long.status_code == 400


def test_a_revoked_token_is_refused_and_only_its_owner_or_the_admin_revokes(cloud, tenants):
    db, mn, accounts, owned = cloud
    issued = _issue(mn, accounts["tenant-0"])
    with _as(mn, tenants["tenant-1"]) as other:
        assert other.delete(f"/v1/tokens/{issued['uuid']}").status_code == 404
        assert issued["uuid"] not in [t["uuid"] for t in other.get("/v1/tokens").json()["items"]]
    with _as(mn, issued["token"]) as client:
        assert issued["uuid"] in [t["uuid"] for t in client.get("/v1/tokens").json()["items"]]
        assert client.delete(f"/v1/tokens/{issued['uuid']}").status_code == 200
        assert client.get("/v1/vm_instances").status_code == 401
    second = _issue(mn, accounts["tenant-0"])
    with _admin(mn) as admin:
        assert admin.delete(f"/v1/tokens/{second['uuid']}").status_code == 200
    with _as(mn, second["token"]) as client:
        assert client.get("/v1/vm_instances").status_code == 401


def test_a_token_of_the_admin_account_is_an_admin_token(cloud):
    db, mn, accounts, owned = cloud
    issued = _issue(mn, accounts["admin"], ttl_seconds=600)
    with _as(mn, issued["token"]) as client:
        assert client.get("/v1/vm_instances").json()["total"] == 8
        assert client.get("/v1/hosts").status_code == 200


def test_rotating_the_admin_token_refuses_the_old_and_accepts_the_new(cloud):
    db, mn, accounts, owned = cloud
    old = mn.token()
    with _as(mn, old) as client:
        assert client.post("/v1/tokens/rotate").status_code == 200
        assert client.get("/v1/hosts").status_code == 401
    new = mn.token()
    assert new != old
    assert stat.S_IMODE((mn.home / "mn" / "admin-token").stat().st_mode) == 0o600
    with _as(mn, new) as client:
        assert client.get("/v1/hosts").status_code == 200
    # the CLI on the MN's machine does the same, with the MN running
    env = {**os.environ, "SKYLIFT_HOME": str(mn.home)}
    cli = Path(sys.executable).parent / "skylift"
    done = subprocess.run([str(cli), "mn", "token", "rotate"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    newest = mn.token()
    assert newest not in done.stdout + done.stderr
    with _as(mn, new) as client:
        assert client.get("/v1/hosts").status_code == 401
    with _as(mn, newest) as client:
        assert client.get("/v1/hosts").status_code == 200
    assert old not in mn.log_path.read_text() and newest not in mn.log_path.read_text()


# -- rate limit ----------------------------------------------------------------------------

def test_failed_authentications_are_rate_limited_per_address(cloud, tenants):
    db, mn, accounts, owned = cloud
    source = "127.0.0.23"  # this test's own address: the other tests' failures do not count
    with _as(mn, "wrong", source) as wrong, _as(mn, mn.token(), source) as admin:
        for i in range(10):
            assert wrong.get("/v1/hosts").status_code == 401, i
            assert admin.get("/v1/hosts").status_code == 200  # successes count for nothing
        limited = wrong.get("/v1/hosts")
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"] == "TooManyAttempts"
        assert admin.get("/v1/hosts").status_code == 200  # the admin never waits
    with _as(mn, "wrong", "127.0.0.24") as elsewhere:
        assert elsewhere.get("/v1/hosts").status_code == 401  # per address


def test_ownership_rows_cover_every_ownable_resource_after_the_seed(cloud):
    db, mn, accounts, owned = cloud
    for kind in OWNABLE:
        rows = _rows(db, f"SELECT COUNT(*) FROM {kind}")[0][0]
        refs = _rows(db, "SELECT COUNT(*) FROM account_resource_refs r JOIN " + kind +
                     " t ON t.uuid = r.resource_uuid WHERE r.resource_type = :k", k=kind)[0][0]
        assert refs == rows, kind


def test_the_limit_lets_an_address_try_again_once_its_failures_leave_the_window():
    now = [1000.0]
    limiter = FailureLimiter(max_failures=10, window=60.0, max_addresses=3,
                             clock=lambda: now[0])
    for _ in range(10):
        assert limiter.retry_after("10.0.0.1") == 0
        limiter.failed("10.0.0.1")
        now[0] += 1.0
    assert limiter.retry_after("10.0.0.1") == 50  # the first failure leaves at 1060
    now[0] = 1060.0
    assert limiter.retry_after("10.0.0.1") == 0
    for address in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):  # bounded: the quietest go first
        limiter.failed(address)
    assert "10.0.0.1" not in limiter._failures and len(limiter._failures) == 3
