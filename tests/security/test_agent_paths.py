"""An identifier never becomes a path outside its folder: what an attacker sends to an agent.

The agent validates every identifier at its API edge (a uuid is exactly uuid.uuid4().hex:
32 lowercase hex digits; package names and versions as a repository index spells them) and
answers a bad one with 422 in its own error format (UsageError: what, why, next). Behind the
API, the drivers and stores check again and turn names into paths only through
skylift.agent.ids.safe_child, which refuses anything that resolves outside its folder.

The agents here are real processes (skylift.agent.launch.start_agent), with both drivers;
requests with dot segments are sent as raw HTTP (http.client), the way `curl --path-as-is`
sends them, because httpx would normalise "/v1/vms/.." away before it left the test.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import uuid as uuidlib
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from skylift.agent import packages as pkgs
from skylift.agent import volumes as vols
from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.hypervisor.process_driver import ProcessDriver
from skylift.agent.hypervisor.sim import SimDriver, _request, stop_simd
from skylift.agent.hypervisor.simaddr import use_shared_daemon
from skylift.agent.hypervisor.vmproc import vm_dir
from skylift.agent.launch import start_agent, stop_agent
from skylift.agent.node import init_node
from skylift.agent.server import TOKEN_ENV
from skylift.errors import UsageError

PACKAGES = {"skylift-agent": "4.0.0", "qemu-kvm": "2.12.0", "libvirt": "4.9.0"}
DRIVERS = ["process", "sim"]
HEX = "0123456789abcdef" * 2

# Path segments as they go on the wire; those without a (decoded) slash reach the uuid parameter.
BAD_PATH_IDS = ["..", ".", "", "a/b", HEX + "0", HEX[:-1], HEX.upper(), "%2e%2e", "%2E%2E",
                "%2e%2e%2f%2e%2e", "..%2f..", "a%2Fb", HEX + "%0a", HEX + "%00",
                str(uuidlib.UUID(HEX)), "vm-1", "%20" + HEX[1:]]
BAD_BODY_UUIDS = ["../../victim/pwned", "..", ".", "", "a/b", "../x", HEX + "0", HEX[:-1],
                  HEX.upper(), HEX + "\n", str(uuidlib.UUID(HEX)), "vm-1"]
PATH_ROUTES = [("GET", "/v1/vms/{}"), ("DELETE", "/v1/vms/{}"), ("POST", "/v1/vms/{}/start"),
               ("POST", "/v1/vms/{}/stop"), ("POST", "/v1/vms/{}/reboot")]
ERROR_KEYS = {"error", "what", "why", "next"}


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def world(tmp_path):
    """A folder around the node roots, with a victim's files beside them."""
    w = tmp_path / "world"
    (w / "nodes" / "victim").mkdir(parents=True)
    (w / "nodes" / "victim" / "keep.txt").write_text("the victim's data")
    (w / "victim").mkdir()
    (w / "victim" / "keep.txt").write_text("the victim's data")
    w = w.resolve()
    yield w
    _kill_processes_naming(w)  # whatever a test on unfixed code left running (VMs named "..")


@pytest.fixture
def start(world, monkeypatch):
    """Factory: a real agent on a fresh node root under world/nodes; all torn down afterwards
    (agents, their VMs, and any process a test on unfixed code left with the world's path)."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    started, roots = [], []

    def _start(driver: str, name: str = "host1"):
        root = world / "nodes" / name
        init_node(root, "host", "c74", dict(PACKAGES))
        roots.append(root)
        handle = start_agent(root, "host", driver=driver)
        started.append(handle)
        return handle

    yield _start
    for handle in started:
        stop_agent(handle, timeout=3.0)
    for root in roots:
        try:
            kill_node_vms(root)
        except Exception:  # a node root an unfixed agent deleted
            pass


def _kill_processes_naming(folder: Path) -> None:
    """SIGKILL the processes this test started whose command line names folder (by pid)."""
    needle = str(folder).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass


def raw(agent, method: str, path: str, body=None) -> tuple[int, dict]:
    """One request exactly as written (no dot-segment normalisation): status and JSON body."""
    conn = http.client.HTTPConnection(agent.host, agent.port, timeout=15)
    try:
        data = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
    finally:
        conn.close()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = {"raw": text.decode(errors="replace")}
    return resp.status, doc if isinstance(doc, dict) else {"raw": doc}


def tree(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """Every path under folder (but under skip), with its kind: what a test compares."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = here / name
            if skip is not None and p == skip:
                continue
            out[str(p.relative_to(folder))] = "dir" if p.is_dir() else "file"
    return out


def is_usage_error(status: int, doc: dict) -> bool:
    return (status == 422 and doc.get("error") == "UsageError" and ERROR_KEYS <= set(doc)
            and bool(doc["what"]) and bool(doc["next"]))


def uuid_refusal(status: int, doc: dict) -> bool:
    return is_usage_error(status, doc) and "32 lowercase hex" in doc["why"]


# --- the VM routes ---------------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_create_with_a_bad_uuid_is_refused_and_writes_nothing_outside(start, world, driver):
    agent = start(driver)
    root = agent.node_root
    before = tree(world, skip=root)
    bad = [*BAD_BODY_UUIDS, str(world / "victim" / "abs")]  # an absolute path too
    got = {u: raw(agent, "POST", "/v1/vms", {"uuid": u, "name": "x"}) for u in bad}
    refused = {u: uuid_refusal(*answer) for u, answer in got.items()}
    assert refused == {u: True for u in bad}, got
    # the error says which form is accepted
    status, doc = got["../../victim/pwned"]
    assert "uuid.uuid4().hex" in doc["why"] + doc["next"] and "../../victim/pwned" in doc["what"]
    # nothing was created (or removed) beside the node root, nothing defined on the node
    assert tree(world, skip=root) == before
    assert not (world / "nodes" / "victim" / "pwned").exists()
    assert raw(agent, "GET", "/v1/vms") == (200, {"raw": []})
    assert not (root / "spec.json").exists() and not (root / "run.json").exists()


@pytest.mark.parametrize("driver", DRIVERS)
def test_bad_uuids_in_path_routes_are_refused(start, world, driver):
    agent = start(driver)
    root = agent.node_root
    good = uuidlib.uuid4().hex
    status, vm = raw(agent, "POST", "/v1/vms", {"uuid": good, "name": "keep me"})
    assert status == 200 and vm["state"] == "Running"
    before = tree(world, skip=root)
    wrong = {}
    for bad in BAD_PATH_IDS:
        reaches_param = bad != "" and "/" not in unquote(bad)
        for method, route in PATH_ROUTES:
            path = route.format(bad)
            status, doc = raw(agent, method, path)
            ok = (uuid_refusal(status, doc) if reaches_param
                  else 400 <= status < 500 and ERROR_KEYS <= set(doc))
            if not ok:
                wrong[f"{method} {path}"] = (status, doc)
    assert wrong == {}
    # the node root and its VM are untouched, nothing appeared beside it
    assert (root / "node.json").is_file() and (root / "packages.json").is_file()
    assert tree(world, skip=root) == before
    status, again = raw(agent, "GET", f"/v1/vms/{good}")
    assert status == 200 and (again["state"], again["boot_id"]) == ("Running", vm["boot_id"])


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_vm_named_dotdot_cannot_empty_the_node_root(start, world, driver):
    agent = start(driver)
    root = agent.node_root
    before = tree(world, skip=root)
    # the attack of the security review: define a VM "..", then delete it
    outcome = {
        "create ..": raw(agent, "POST", "/v1/vms", {"uuid": "..", "name": "x"})[0],
        "DELETE /v1/vms/..": raw(agent, "DELETE", "/v1/vms/..")[0],
        "DELETE /v1/vms/%2e%2e": raw(agent, "DELETE", "/v1/vms/%2e%2e")[0],
        "create .": raw(agent, "POST", "/v1/vms", {"uuid": ".", "name": "x"})[0],
        "DELETE /v1/vms/.": raw(agent, "DELETE", "/v1/vms/.")[0],
        "node.json kept": (root / "node.json").is_file(),
        "packages.json kept": (root / "packages.json").is_file(),
        "world unchanged": tree(world, skip=root) == before,
    }
    assert outcome == {"create ..": 422, "DELETE /v1/vms/..": 422,
                       "DELETE /v1/vms/%2e%2e": 422, "create .": 422, "DELETE /v1/vms/.": 422,
                       "node.json kept": True, "packages.json kept": True,
                       "world unchanged": True}
    assert raw(agent, "GET", "/v1/health")[0] == 200


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_valid_uuid_works_end_to_end(start, world, driver):
    agent = start(driver)
    root = agent.node_root
    vm_uuid, vol_uuid = uuidlib.uuid4().hex, uuidlib.uuid4().hex
    with httpx.Client(base_url=agent.url, timeout=15) as api:
        vm = api.post("/v1/vms", json={"uuid": vm_uuid, "name": "web 1", "ha": True}).json()
        assert (vm["uuid"], vm["state"], vm["ha"]) == (vm_uuid, "Running", True)
        assert api.get(f"/v1/vms/{vm_uuid}").json()["boot_id"] == vm["boot_id"]
        assert [v["uuid"] for v in api.get("/v1/vms").json()] == [vm_uuid]
        assert api.post(f"/v1/vms/{vm_uuid}/stop").json()["state"] == "Stopped"
        started = api.post(f"/v1/vms/{vm_uuid}/start").json()
        assert started["state"] == "Running" and started["boot_id"] != vm["boot_id"]
        rebooted = api.post(f"/v1/vms/{vm_uuid}/reboot").json()
        assert rebooted["boot_id"] != started["boot_id"]
        # volumes with valid uuids
        assert api.post("/v1/volumes", json={"uuid": vol_uuid, "size": 1 << 30}).status_code == 200
        att = api.post("/v1/volumes", json={"action": "attach", "uuid": vol_uuid,
                                             "vm_uuid": vm_uuid}).json()
        assert att["attached_to"] == vm_uuid
        assert api.post("/v1/volumes", json={"action": "detach", "uuid": vol_uuid}).status_code == 200
        assert api.post("/v1/volumes", json={"action": "delete", "uuid": vol_uuid}).status_code == 200
        # packages with valid names and versions
        got = api.post("/v1/packages", json={"name": "qemu-kvm", "version": "1:4.2.0-48.el7"})
        assert got.status_code == 200 and got.json()["previous"] == "2.12.0"
        # delete, then it is gone (404 NoSuchVm, not a refusal of the uuid)
        assert api.delete(f"/v1/vms/{vm_uuid}").json() == {"uuid": vm_uuid, "destroyed": True}
        gone = api.get(f"/v1/vms/{vm_uuid}")
        assert gone.status_code == 404 and gone.json()["error"] == "NoSuchVm"
        assert api.get("/v1/vms").json() == []
    assert (root / "node.json").is_file()
    if driver == "process":
        assert not (root / "vms" / vm_uuid).exists()


# --- volumes and packages --------------------------------------------------------------------


def test_volume_routes_refuse_bad_uuids(start, world):
    agent = start("process")
    root = agent.node_root
    vm_uuid, vol_uuid = uuidlib.uuid4().hex, uuidlib.uuid4().hex
    assert raw(agent, "POST", "/v1/vms", {"uuid": vm_uuid, "name": "x"})[0] == 200
    assert raw(agent, "POST", "/v1/volumes", {"uuid": vol_uuid, "size": 1})[0] == 200
    volumes_before = (root / "volumes.json").read_text()
    before = tree(world, skip=root)
    wrong = {}
    for bad in BAD_BODY_UUIDS:
        for body in ({"action": "create", "uuid": bad, "size": 1},
                     {"action": "attach", "uuid": bad, "vm_uuid": vm_uuid},
                     {"action": "attach", "uuid": vol_uuid, "vm_uuid": bad},
                     {"action": "detach", "uuid": bad},
                     {"action": "delete", "uuid": bad}):
            answer = raw(agent, "POST", "/v1/volumes", body)
            if not uuid_refusal(*answer):
                wrong[json.dumps(body)] = answer
    assert wrong == {}
    status, doc = raw(agent, "POST", "/v1/volumes", {"action": "attach", "uuid": vol_uuid})
    assert is_usage_error(status, doc) and "vm_uuid" in doc["what"]
    assert (root / "volumes.json").read_text() == volumes_before
    assert tree(world, skip=root) == before


def test_package_routes_refuse_bad_names_and_versions(start, world):
    agent = start("sim")
    root = agent.node_root
    packages_before = (root / "packages.json").read_text()
    wrong = {}
    bad_names = ["../x", "..", ".", "", "a/b", "/etc/passwd", "x y", "-rf", ".hidden", "x\n",
                 "x" * 129]
    bad_versions = ["../1", "", "1/2", "1 2", "..", "1\n"]
    for body in ([{"name": n, "version": "1.0"} for n in bad_names]
                 + [{"name": "libvirt", "version": v} for v in bad_versions]):
        status, doc = raw(agent, "POST", "/v1/packages", body)
        if not (is_usage_error(status, doc) and "package" in doc["why"]):
            wrong[json.dumps(body)] = (status, doc)
    assert wrong == {}
    assert (root / "packages.json").read_text() == packages_before
    assert raw(agent, "GET", "/v1/packages") == (200, PACKAGES)


def test_packages_command_refuses_bad_names(tmp_path):
    root = tmp_path / "node"
    init_node(root, "host", "c74", dict(PACKAGES))
    before = (root / "packages.json").read_text()
    out = subprocess.run([sys.executable, "-m", "skylift.agent.packages", "--node-root",
                          str(root), "install", "../x", "1.0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "invalid package name '../x'" in out.stderr
    assert "Traceback" not in out.stderr
    assert (root / "packages.json").read_text() == before


# --- behind the API: the drivers and stores refuse too (defence in depth) --------------------


def test_safe_child_refuses_names_that_lead_out(tmp_path):
    from skylift.agent.ids import safe_child

    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    assert safe_child(folder, "x") == folder.resolve() / "x"
    assert safe_child(folder, "sub/x") == folder.resolve() / "sub" / "x"
    for name in ["..", "../outside", "sub/../../outside", "/etc/passwd", str(outside), "",
                 ".", "sub/..", "a\0b"]:
        with pytest.raises(UsageError):
            safe_child(folder, name)
    # a symlink leading out is refused, wherever it is on the way
    (folder / "link").symlink_to(outside)
    (folder / "sub" / "up").symlink_to(tmp_path)
    for name in ["link", "link/x", "sub/up/outside", "sub/up"]:
        with pytest.raises(UsageError, match="leads out"):
            safe_child(folder, name)
    # a symlink that stays inside is followed, and the resolved path is what comes back
    (folder / "inner").symlink_to(folder / "sub")
    assert safe_child(folder, "inner/x") == folder.resolve() / "sub" / "x"


def test_uuid_check_accepts_exactly_uuid4_hex():
    from skylift.agent.ids import check_uuid, is_uuid

    made = uuidlib.uuid4().hex
    assert check_uuid(made) == made and is_uuid(HEX)
    for bad in ["", "..", HEX.upper(), HEX + "\n", HEX[:-1], HEX + "0", str(uuidlib.UUID(HEX)),
                "g" * 32, None, 123]:
        assert not is_uuid(bad)
        with pytest.raises(UsageError, match="32 lowercase hex"):
            check_uuid(bad)


def test_drivers_and_stores_refuse_bad_names_themselves(world):
    root = world / "nodes" / "host1"
    init_node(root, "host", "c74", dict(PACKAGES))
    (root / "spec.json").write_text('{"name": "planted", "uuid": ".."}')  # as if made earlier
    before = tree(world, skip=root)
    drv = ProcessDriver(root)
    try:
        for bad in ["../../victim/pwned", "..", "", "a/b", str(world / "victim")]:
            for call in (lambda: drv.create(bad, "x"), lambda: drv.get(bad),
                         lambda: drv.start(bad), lambda: drv.stop(bad),
                         lambda: drv.destroy(bad)):
                with pytest.raises(UsageError):
                    call()
            with pytest.raises(UsageError):
                vm_dir(root, bad)
            with pytest.raises(UsageError):
                vols.create(root, bad, 1)
            with pytest.raises(UsageError):
                vols.delete(root, bad)
        for name, version in [("../x", "1"), ("x", "../1"), ("", "1")]:
            with pytest.raises(UsageError):
                pkgs.install(root, name, version)
        assert (root / "node.json").is_file() and (root / "spec.json").is_file()
        assert tree(world, skip=root) == before
        assert pkgs.read_packages(root) == PACKAGES
    finally:
        kill_node_vms(root)


def test_a_vms_folder_that_leads_out_is_refused(world):
    root = world / "nodes" / "host1"
    init_node(root, "host", "c74", dict(PACKAGES))
    outside = world / "victim"
    (root / "vms").symlink_to(outside)
    before = tree(world, skip=root)
    drv = ProcessDriver(root)
    try:
        with pytest.raises(UsageError, match="leads out"):
            drv.create(uuidlib.uuid4().hex, "x")
        assert drv.list() == []
    finally:
        kill_node_vms(root)
    assert tree(world, skip=root) == before


def test_sim_daemon_serves_only_the_node_roots_that_name_it(world):
    daemon = world / "nodes" / "hv"
    init_node(daemon, "host")
    mine = world / "nodes" / "mine"
    init_node(mine, "host")
    use_shared_daemon(mine, daemon)
    stranger = world / "nodes" / "stranger"  # never pointed at this daemon
    stranger.mkdir()
    tricky = world / "nodes" / "tricky"  # points at it, but its sim folder leads out
    init_node(tricky, "host")
    use_shared_daemon(tricky, daemon)
    (tricky / "sim").symlink_to(world / "victim")
    foreign = world / "nodes" / "foreign"  # names it, but belongs to another user
    foreign.mkdir()
    use_shared_daemon(foreign, daemon)
    if os.geteuid() == 0:
        os.chown(foreign, 65534, 65534)
    try:
        SimDriver(daemon)  # starts the daemon
        good = uuidlib.uuid4().hex
        ok = _request(daemon, {"op": "create", "uuid": good, "name": "x", "node": str(mine)})
        assert ok["ok"] and ok["vm"]["state"] == "Running"
        refused = {
            "stranger": _request(daemon, {"op": "create", "uuid": good, "name": "x",
                                          "node": str(stranger)}),
            "relative": _request(daemon, {"op": "create", "uuid": good, "name": "x",
                                          "node": "nodes/stranger"}),
            "tricky": _request(daemon, {"op": "create", "uuid": good, "name": "x",
                                        "node": str(tricky)}),
            "bad uuid": _request(daemon, {"op": "create", "uuid": "../x", "name": "x",
                                          "node": str(mine)}),
        }
        if os.geteuid() == 0:
            refused["foreign"] = _request(daemon, {"op": "create", "uuid": good, "name": "x",
                                                   "node": str(foreign)})
        assert {k: r.get("ok") for k, r in refused.items()} == {k: False for k in refused}
        assert not (stranger / "sim").exists() and not (foreign / "sim").exists()
        assert not (world / "victim" / "domains.json").exists()
        with pytest.raises(UsageError):
            SimDriver(mine).create("../x", "x")
    finally:
        stop_simd(daemon)
