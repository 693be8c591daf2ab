"""The MN's API answers every bad input with a clear 4xx, never a 500, never a secret.

One test (or a few) per finding of the security review: integers past int64, body size,
NUL and bidi characters in names, unknown and mistyped global settings, database driver
messages, password hashes, management addresses (SSRF), the repository server's paths and
ranges, and the API's headers (no CDN-loaded /docs, nosniff, DENY, no-referrer, a CSP).

(Not named test_mn_api.py: tests/mn has one, and test folders are not packages, so pytest
can import only one module of that name in a run.)
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from html.parser import HTMLParser

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from skylift.agent.launch import free_port
from skylift.db.engine import Database
from skylift.lab.rollout import write_mn_repo
from skylift.lab.seed import seed
from skylift.mn.api import errors as api_errors
from skylift.mn.api.hosts import HostIn
from skylift.mn.launch import start_mn, stop_mn
from skylift.repo.routes import create_app as repo_app

INT64_MAX = 2**63 - 1
SECRET_KEY = re.compile(r"(^password|_hash$|^token|^secret)", re.I)


def _db_url(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def cloud_db(tmp_path_factory) -> Database:
    """A seeded 4.3.12 cloud (SQLite)."""
    folder = tmp_path_factory.mktemp("mn-security-db")
    db = Database.from_string(f"sqlite:///{folder / 'cloud.db'}")
    seed(db, "4.3.12", 2, 2)
    return db


@pytest.fixture(scope="module")
def mn(cloud_db, tmp_path_factory):
    """The cloud served by a real MN process with a local repository."""
    folder = tmp_path_factory.mktemp("mn-security")
    db = cloud_db
    node = write_mn_repo(folder / "node")
    handle = start_mn(_db_url(db), port=free_port(), node_root=node,
                      env={"SKYLIFT_HOME": str(folder / "home")})
    try:
        yield handle
    finally:
        stop_mn(handle)


@pytest.fixture
def client(mn):
    with mn.client(timeout=30) as c:
        yield c


@contextlib.contextmanager
def served(app):
    """A real HTTP server (uvicorn, in a thread) running app; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _local_port(resp: httpx.Response) -> int:
    """The client-side port of the connection a response came on (same port: same connection)."""
    return resp.extensions["network_stream"].get_extra_info("client_addr")[1]


def _is_error(resp: httpx.Response, status: int | tuple[int, ...]) -> dict:
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, (resp.status_code, resp.text[:500])
    body = resp.json()
    assert set(body) >= {"error", "what", "why", "next"}, body
    return body


# -- 1. integers past int64; a last-resort handler that keeps the connection ---------------

@pytest.mark.parametrize("path, body", [
    ("/v1/instance_offerings", {"name": "big", "cpu_num": 1, "memory_size": 2**63}),
    ("/v1/disk_offerings", {"name": "big", "disk_size": 2**63}),
    ("/v1/images", {"name": "big", "size": 2**63}),
    ("/v1/primary_storages", {"name": "big", "zone_uuid": "z", "total_capacity": 2**63}),
    ("/v1/backup_storages", {"name": "big", "total_capacity": 10**30}),
    ("/v1/volumes", {"name": "big", "ps_uuid": "p", "size": 2**64}),
    ("/v1/l2_networks", {"name": "big", "zone_uuid": "z", "vlan": 2**63}),
])
def test_integers_past_int64_in_a_body_are_refused_and_the_connection_serves_on(client, path,
                                                                                 body):
    bad = client.post(path, json=body)
    _is_error(bad, 400)
    again = client.get("/v1/zones", params={"limit": 1})
    assert again.status_code == 200
    assert _local_port(again) == _local_port(bad)


@pytest.mark.parametrize("params", [{"limit": "9223372036854775808"}, {"limit": str(10**30)},
                                    {"offset": "9223372036854775808"}, {"limit": "-1"}])
def test_a_page_past_int64_is_refused_and_the_connection_serves_on(client, params):
    bad = client.get("/v1/zones", params=params)
    assert "limit" in _is_error(bad, 400)["why"] or "offset" in bad.json()["why"]
    again = client.get("/v1/zones", params={"limit": 1000})
    assert again.status_code == 200
    assert _local_port(again) == _local_port(bad)


def test_the_largest_int64_size_is_taken(client):
    made = client.post("/v1/disk_offerings", json={"name": "huge", "disk_size": INT64_MAX})
    assert made.status_code == 201, made.text
    assert client.delete(f"/v1/disk_offerings/{made.json()['uuid']}").status_code == 200


@pytest.fixture
def boom_server():
    """A real HTTP server running an app wired with the MN's error handling, whose /boom
    fails with an unexpected error (a bug the API did not foresee)."""
    app = FastAPI()
    api_errors.install(app, "sqlite:///cloud.db")

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("internal detail: /var/lib/skylift/secret-path")

    @app.get("/ok")
    def ok() -> dict:
        return {"ok": True}

    with served(app) as url:
        yield url


def test_an_unexpected_error_is_a_json_500_without_detail_and_the_connection_serves_on(
        boom_server):
    with httpx.Client(base_url=boom_server) as c:
        first = c.get("/ok")
        bad = c.get("/boom")
        body = _is_error(bad, 500)
        assert "Traceback" not in bad.text and "secret-path" not in bad.text
        assert "RuntimeError" not in bad.text
        assert body["error"] == "InternalError" and body["next"]
        after = c.get("/ok")
        assert after.json() == {"ok": True}
        assert _local_port(first) == _local_port(bad) == _local_port(after)


# -- 2. the body size ----------------------------------------------------------------------

def test_a_body_over_the_limit_is_refused_413_by_its_content_length(client):
    big = client.post("/v1/zones", json={"name": "big", "description": "x" * (2 << 20)})
    body = _is_error(big, 413)
    assert "1 MiB" in body["what"] + body["why"]


def test_a_chunked_body_over_the_limit_is_refused_413_by_counting(client):
    def chunks():
        yield b'{"name": "big", "description": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    big = client.post("/v1/zones", content=chunks(),
                      headers={"Content-Type": "application/json"})
    assert big.request.headers.get("transfer-encoding") == "chunked"
    _is_error(big, 413)


def test_a_declared_100_mb_body_is_refused_before_it_is_sent(mn):
    with socket.create_connection((mn.host, mn.port), timeout=10) as sock:
        sock.sendall((f"POST /v1/zones HTTP/1.1\r\nHost: {mn.host}\r\n"
                      f"Authorization: Bearer {mn.token()}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {100 << 20}\r\n\r\n").encode())
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]


def test_a_body_under_the_limit_is_read(client):
    # well under 1 MiB, refused for its description's length, not its size
    long = client.post("/v1/zones", json={"name": "z", "description": "x" * (512 << 10)})
    assert "description" in _is_error(long, 400)["why"]


# -- 3. NUL and bidi-override characters ---------------------------------------------------

CREATES = [("/v1/zones", {}), ("/v1/clusters", {"zone_uuid": "z"}),
           ("/v1/primary_storages", {"zone_uuid": "z"}), ("/v1/backup_storages", {}),
           ("/v1/l2_networks", {"zone_uuid": "z"}), ("/v1/l3_networks", {"l2_uuid": "l"}),
           ("/v1/images", {}), ("/v1/instance_offerings", {"cpu_num": 1, "memory_size": 1 << 30}),
           ("/v1/disk_offerings", {"disk_size": 1 << 30}),
           ("/v1/hosts", {"cluster_uuid": "c", "management_ip": "127.0.0.1"}),
           ("/v1/vm_instances", {"host_uuid": "h"}), ("/v1/volumes", {"ps_uuid": "p"})]


@pytest.mark.parametrize("char", ["\x00", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
                                  "\u2066", "\u2067", "\u2068", "\u2069"])
@pytest.mark.parametrize("path, rest", CREATES, ids=[p for p, _ in CREATES])
def test_nul_and_bidi_overrides_in_names_are_refused(client, path, rest, char):
    bad = client.post(path, json={"name": f"web{char}gpj.exe", **rest})
    why = _is_error(bad, (400, 422))["why"]
    assert "name" in why and ("NUL" in why or "bidi" in why), why


@pytest.mark.parametrize("char", ["\x00", "\u202e", "\u2067"])
def test_nul_and_bidi_overrides_in_descriptions_are_refused(client, char):
    bad = client.post("/v1/zones", json={"name": "z", "description": f"a{char}b"})
    assert "description" in _is_error(bad, (400, 422))["why"]


def test_plain_unicode_names_are_taken(client):
    made = client.post("/v1/zones", json={"name": "zone-ü-東京", "description": "línea\nдва"})
    assert made.status_code == 201, made.text
    assert client.delete(f"/v1/zones/{made.json()['uuid']}").status_code == 200


# -- 4. global settings: unknown ones, values of the wrong type ---------------------------

def test_an_unknown_setting_is_refused_404_naming_the_known_ones(client):
    bad = client.put("/v1/global-settings/nosuch/thing", json={"value": "1"})
    body = _is_error(bad, 404)
    assert "nosuch.thing" in body["what"] and "ha.enable" in body["next"]
    assert client.get("/v1/global-settings/nosuch/thing").status_code == 404


@pytest.mark.parametrize("value", [{"a": 1}, [7070], None, "port", "nan", "inf", 0, 70000,
                                   7070.5, True, "1e400"])
def test_a_numeric_setting_takes_only_a_number_in_its_range(client, value):
    bad = client.put("/v1/global-settings/host/agentPort", json={"value": value})
    assert "agentPort" in _is_error(bad, 400)["what"]


@pytest.mark.parametrize("value", [{"x": True}, ["true"], None, 1])
def test_a_boolean_setting_takes_only_true_or_false(client, value):
    bad = client.put("/v1/global-settings/ha/enable", json={"value": value})
    _is_error(bad, 400)


def test_settings_of_the_wrong_type_change_nothing_and_right_ones_are_taken(client):
    before = client.get("/v1/global-settings/host/pingInterval").json()["value"]
    assert client.put("/v1/global-settings/host/pingInterval",
                      json={"value": {"a": 1}}).status_code == 400
    assert client.get("/v1/global-settings/host/pingInterval").json()["value"] == before
    for value, stored in ((30, "30"), ("45", "45"), (2.5, "2.5"), (before, before)):
        put = client.put("/v1/global-settings/host/pingInterval", json={"value": value})
        assert put.status_code == 200, put.text
        assert put.json()["value"] == stored
    # a setting the cloud already has but the code does not name stays settable, as text
    put = client.put("/v1/global-settings/vm/deletionPolicy", json={"value": "Direct"})
    assert put.status_code == 200 and put.json()["previous"] == "Delay"
    assert client.put("/v1/global-settings/vm/deletionPolicy",
                      json={"value": ["Direct"]}).status_code == 400
    client.put("/v1/global-settings/vm/deletionPolicy", json={"value": "Delay"})


def test_the_upgrades_own_setting_is_settable_before_it_exists(cloud_db, client):
    eng = cloud_db.engine()  # start from no row at all, as on a cloud of an older release
    with eng.begin() as conn:
        conn.execute(sa.text("DELETE FROM global_settings WHERE category = 'upgrade'"))
    eng.dispose()
    path = "/v1/global-settings/upgrade/vmHaHeldOffBy"
    held = client.put(path, json={"value": "upgrade to 4.3.12"})
    assert held.status_code == 200, held.text
    assert client.get("/v1/ha").json()["held_off_by_upgrade"] == "upgrade to 4.3.12"
    assert client.put(path, json={"value": ""}).status_code == 200
    assert client.get("/v1/ha").json()["held_off_by_upgrade"] is None


# -- 5. database driver messages -----------------------------------------------------------

def test_mariadb_over_long_fields_answer_400_without_the_drivers_message(make_db, tmp_path):
    db = make_db("mysql")
    seed(db, "4.3.12", 1, 1)
    handle = start_mn(_db_url(db), port=free_port(), env={"SKYLIFT_HOME": str(tmp_path / "h")})
    try:
        with handle.client(timeout=30) as c:
            for path, body, field in (
                    ("/v1/zones", {"name": "z", "description": "x" * 70000}, "description"),
                    ("/v1/images", {"name": "i", "format": "f" * 100}, "format"),
                    ("/v1/clusters", {"name": "c", "zone_uuid": "z",
                                      "hypervisor_type": "k" * 40}, "hypervisor_type")):
                bad = c.post(path, json=body)
                text = _is_error(bad, 400)["why"]
                assert field in text, text
                for leak in (db.name, "root@", "127.0.0.1", "3306", "1406", "Data too long",
                             "mysql"):
                    assert leak not in bad.text, (leak, bad.text)
    finally:
        stop_mn(handle)


class _FakeDriverError(Exception):
    """What a DB-API driver raises: its message names the user, host and database."""


@pytest.fixture
def db_error_app():
    app = FastAPI()
    api_errors.install(app, "mysql+pymysql://skylift@db.example:3306/skylift_prod")
    leak = ("(1406, \"Data too long for column 'name' at row 1; user 'skylift'@'db.example' "
            "database 'skylift_prod'\")")

    @app.get("/data")
    def data() -> dict:
        raise sa.exc.DataError("INSERT INTO zones (name) VALUES (%s)", ("x",),
                               _FakeDriverError(leak))

    @app.get("/integrity")
    def integrity() -> dict:
        raise sa.exc.IntegrityError(
            "INSERT INTO accounts (name) VALUES (%s)", ("x",), _FakeDriverError(
                "(1062, \"Duplicate entry 'x' for key 'name' (skylift@db.example/skylift_prod)\")"))

    @app.get("/operational")
    def operational() -> dict:
        raise sa.exc.OperationalError("SELECT 1", (), _FakeDriverError(
            "(1045, \"Access denied for user 'skylift'@'db.example' (using password: YES)\")"))

    with served(app) as url, httpx.Client(base_url=url) as c:
        yield c


@pytest.mark.parametrize("path, status, field", [("/data", 400, "name"),
                                                 ("/integrity", 409, "name"),
                                                 ("/operational", 500, None)])
def test_database_errors_never_echo_the_driver_or_the_database(db_error_app, path, status,
                                                               field):
    resp = db_error_app.get(path)
    body = _is_error(resp, status)
    for leak in ("skylift_prod", "db.example", "skylift@", "1406", "1062", "1045",
                 "Duplicate entry", "Data too long", "Access denied", "INSERT", "SELECT"):
        assert leak not in resp.text, (leak, resp.text)
    if field:
        assert f"'{field}'" in body["what"] + body["why"]


# -- 6. secrets and their hashes -----------------------------------------------------------

def _secret_keys(value, where="") -> list[str]:
    found = []
    if isinstance(value, dict):
        for k, v in value.items():
            if SECRET_KEY.search(str(k)):
                found.append(f"{where}.{k}")
            found += _secret_keys(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _secret_keys(v, f"{where}[{i}]")
    return found


def test_no_password_hash_or_secret_is_served(client):
    accounts = client.get("/v1/accounts").json()
    assert accounts["count"] >= 1
    one = client.get(f"/v1/accounts/{accounts['items'][0]['uuid']}").json()
    users = client.get("/v1/em_users").json()
    inventory = client.get("/v1/inventory").json()
    for body in (accounts, one, users, inventory):
        assert _secret_keys(body) == []
        assert "sha512:" not in str(body)
    assert accounts["items"][0]["name"]  # the rest of the row is still served


# -- 7. management addresses (SSRF) --------------------------------------------------------

@pytest.mark.parametrize("address", [
    "http://169.254.169.254/latest/meta-data", "169.254.169.254", "metadata.google.internal",
    "example.com", "127.0.0.1:22/x", "127.0.0.1/../../v1", "10.0.0.1#@evil", "0.0.0.0", "::",
    "224.0.0.1", "ff02::1", "fe80::1", "255.255.255.255", "10.0.0.1 ", "1", "",
    "[::1]", "127.0.0.1\x00", "::ffff:169.254.169.254"])
def test_a_management_ip_must_be_an_ip_address(client, address):
    bad = client.post("/v1/hosts", json={"name": "h", "cluster_uuid": "c",
                                         "management_ip": address})
    assert "management_ip" in _is_error(bad, (400, 422))["why"]


@pytest.mark.parametrize("address, kept", [("127.0.0.1", "127.0.0.1"), ("10.1.2.3", "10.1.2.3"),
                                           ("::1", "::1"), ("2001:DB8:0::5", "2001:db8::5")])
def test_ipv4_and_ipv6_addresses_are_taken(address, kept):
    assert HostIn(name="h", cluster_uuid="c", management_ip=address).management_ip == kept


@pytest.mark.parametrize("field", ["start_ip", "end_ip", "gateway", "netmask"])
def test_ip_range_addresses_must_be_ip_addresses(client, field):
    rng = {"start_ip": "10.9.0.10", "end_ip": "10.9.0.99", "gateway": "10.9.0.1",
           "netmask": "255.255.255.0"}
    rng[field] = "http://169.254.169.254/"
    bad = client.post("/v1/l3_networks", json={"name": "n", "l2_uuid": "l", "ip_ranges": [rng]})
    assert field in _is_error(bad, (400, 422))["why"]


# -- 8. the repository server --------------------------------------------------------------

@pytest.mark.parametrize("path", ["/repo/c74/%00", "/repo/c74/a%00b/REPO.json",
                                  "/repo/%00/REPO.json", "/repo/c74/" + "a" * 300,
                                  "/repo/" + "c" * 300 + "/REPO.json",
                                  "/repo/c74/" + "/".join(["d" * 200] * 30),
                                  "/repo/c74/packages/" + "p" * 300 + ".rpm"])
def test_repo_bad_paths_answer_4xx(mn, path):
    resp = httpx.get(mn.url + path)
    assert resp.status_code in (400, 404), (resp.status_code, resp.text[:300])


@pytest.mark.parametrize("header, status", [
    ("bytes=" + "9" * 5000 + "-", 416), ("bytes=0-" + "9" * 5000, 206),
    ("bytes=-" + "9" * 5000, 206), ("bytes=" + "9" * 5000 + "-" + "9" * 5001, 416),
    ("bytes=0-9", 206), ("bytes=99999999999999999999-", 416)])
def test_repo_huge_ranges_answer_416_or_a_clamped_range(mn, header, status):
    resp = httpx.get(mn.url + "/repo/c74/REPO.json", headers={"Range": header})
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    if status == 206:
        first, last = resp.headers["content-range"].split()[1].split("/")[0].split("-")
        assert len(resp.content) == int(last) - int(first) + 1


def test_repo_listing_shows_no_absolute_path_or_pid(tmp_path):
    node = write_mn_repo(tmp_path / "node")
    with served(repo_app(node)) as url:
        listing = httpx.get(url + "/")
    assert listing.status_code == 200
    assert str(tmp_path) not in listing.text and "/store/" not in listing.text
    assert "pid" not in listing.json() and f":{os.getpid()}" not in listing.text
    assert [r["os"] for r in listing.json()["repos"]] == ["c74"]
    assert listing.json()["repos"][0]["repo_version"] == "4.3.12"


# -- 9. /docs and security headers ---------------------------------------------------------

HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
           "referrer-policy": "no-referrer"}


def test_docs_and_redoc_are_gone_and_openapi_stays(mn):
    assert httpx.get(mn.url + "/openapi.json").status_code == 200
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        resp = httpx.get(mn.url + path)
        assert resp.status_code in (401, 404), path
        assert "cdn" not in resp.text.lower()


@pytest.mark.parametrize("method, path, auth", [
    ("GET", "/", False), ("GET", "/v1/version", False), ("GET", "/v1/zones", True),
    ("GET", "/v1/zones", False), ("GET", "/v1/nosuch/x", True), ("GET", "/openapi.json", False),
    ("POST", "/v1/zones", True), ("GET", "/repo/c74/REPO.json", False),
    ("GET", "/repo/c74/%00", False)])
def test_every_response_carries_the_security_headers(mn, method, path, auth):
    headers = {"Authorization": f"Bearer {mn.token()}"} if auth else {}
    resp = httpx.request(method, mn.url + path, headers=headers)
    for key, value in HEADERS.items():
        assert resp.headers.get(key) == value, (path, key, resp.status_code)
    assert "default-src 'self'" in resp.headers.get("content-security-policy", "")


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href", "action"):
                self.refs.append(value or "")
            if key == "style" or key.startswith("on"):
                self.inline.append(f"{tag} {key}")
        if tag == "script" and not dict(attrs).get("src"):
            self.inline.append(tag)  # an inline script: the CSP would refuse it


def test_the_console_page_loads_only_from_its_own_origin_under_its_csp(mn):
    page = httpx.get(mn.url + "/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    refs = _Refs()
    refs.feed(page.text)
    # its own origin's paths, or places within the page itself (#/hosts: the console's pages)
    assert refs.refs and all((r.startswith("/") and not r.startswith("//")) or r.startswith("#")
                             for r in refs.refs)
    assert refs.inline == [] and "<style" not in page.text
    for ref in refs.refs:  # everything the page loads is served, under the same headers
        asset = httpx.get(mn.url + ref)
        assert asset.status_code == 200 and asset.headers["x-content-type-options"] == "nosniff"
        assert "http://" not in asset.text and "https://" not in asset.text
