"""`skylift host add/remove` against real nodes: network namespaces with OpenSSH, an MN
installed by `skylift install` (a 4.3.12 lab of one host), the agent deployed over SSH from
the MN's repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from skylift.agent.client import AgentClient
from skylift.db.engine import Database
from skylift.lab import ns_cloud
from skylift.lab.installation import LabSpec, down, lab_trust, up
from skylift.mn.launch import mn_client
from skylift.mn.nodes import NodeRegistry, registry_path

pytestmark = pytest.mark.slow
LAB = "hostadd"


@pytest.fixture(scope="module")
def lab():
    state = up(LabSpec(name=LAB, release="4.3.12", hosts=1, vms=1, nodes="ns"))
    yield state
    down(LAB)


def skylift(state: dict, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SKYLIFT_HOME=state["mn"]["home"], COLUMNS="200")
    env.pop("SKYLIFT_SSH_PASSWORD", None)
    return subprocess.run([sys.executable, "-m", "skylift.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def cluster_of(state: dict) -> str:
    eng = Database.from_string(state["db_url"]).engine()
    with eng.connect() as conn:
        uuid = conn.execute(sa.text("SELECT cluster_uuid FROM hosts LIMIT 1")).scalar()
    eng.dispose()
    return uuid


def add_argv(state: dict, node: dict, name: str, *extra: str) -> list[str]:
    return ["host", "add", node["address"], "--name", name, "--cluster", cluster_of(state),
            "--ssh-key", state["ns"]["client_key"],
            "--host-key-fingerprint", node["ssh"]["host_key_fingerprint"],
            "--node-root", node["node_root"], "--json", *extra]


def recorded(state: dict, address: str) -> list[dict]:
    token = Path(state["mn"]["token_file"]).read_text().strip()
    with mn_client(state["mn"]["url"], token, 10.0, home=Path(state["mn"]["home"])) as c:
        hosts = c.get("/v1/hosts").json()
    rows = hosts.get("items", hosts) if isinstance(hosts, dict) else hosts
    return [h for h in rows if h["management_ip"] == address]


def test_a_new_host_is_deployed_recorded_and_connected_then_refused_twice(lab):
    node = ns_cloud.extra_node(lab, "extra-1")
    out = skylift(lab, *add_argv(lab, node, "extra-1"))
    assert out.returncode == 0, out.stdout + out.stderr
    host = json.loads(out.stdout)
    assert host["status"] == "Connected" and host["management_ip"] == node["address"]
    url = f"https://{node['address']}:{lab['agent_port']}"
    with AgentClient(url, timeout=10, trust=lab_trust(lab)) as agent:
        doc = agent.version()
    assert (doc["agent_version"], doc["code"]["source"], doc["uuid"]) == (
        "4.3.12", "package", host["uuid"])
    entry = NodeRegistry.load(registry_path(Path(lab["mn"]["home"]))).nodes[host["uuid"]]
    assert entry["service"] == "skylift" and "password" not in entry
    again = skylift(lab, *add_argv(lab, node, "extra-1-again"))
    assert again.returncode == 2, again.stdout + again.stderr
    assert "already added" in again.stderr
    assert len(recorded(lab, node["address"])) == 1


def test_a_failure_half_way_leaves_the_host_re_addable_and_removable(lab):
    node = ns_cloud.extra_node(lab, "extra-2")
    nowhere = f"https://{lab['ns']['gateway']}:1/repo"  # nothing listens there
    failed = skylift(lab, *add_argv(lab, node, "extra-2", "--repo-url", nowhere))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert recorded(lab, node["address"]) == []  # nothing recorded
    added = skylift(lab, *add_argv(lab, node, "extra-2"))
    assert added.returncode == 0, added.stdout + added.stderr
    uuid = json.loads(added.stdout)["uuid"]
    removed = skylift(lab, "host", "remove", uuid, "--json")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert recorded(lab, node["address"]) == []
    assert uuid not in NodeRegistry.load(registry_path(Path(lab["mn"]["home"]))).nodes
    back = skylift(lab, *add_argv(lab, node, "extra-2"))
    assert back.returncode == 0, back.stdout + back.stderr


def test_a_host_whose_os_release_the_mn_does_not_serve_is_refused_and_left_alone(lab):
    node = ns_cloud.extra_node(lab, "extra-3", os_release="c76")
    out = skylift(lab, *add_argv(lab, node, "extra-3"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "c76" in out.stderr and "same-repo rule" in out.stderr
    assert not (Path(node["node_root"]) / "agent").exists()
    assert recorded(lab, node["address"]) == []


def test_a_host_whose_qemu_is_not_its_clusters_is_refused_and_left_alone(lab):
    from skylift.agent.packages import read_packages, write_packages

    node = ns_cloud.extra_node(lab, "extra-4")
    root = Path(node["node_root"])
    write_packages(root, read_packages(root) | {"qemu-kvm": "9.1.0"})
    out = skylift(lab, *add_argv(lab, node, "extra-4"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "QEMU 9.1.0" in out.stderr and "new cluster" in out.stderr
    assert not (root / "agent").exists()
    assert recorded(lab, node["address"]) == []


def test_an_mn_serving_every_address_points_hosts_at_its_address_on_their_route(lab):
    """A default install listens on 0.0.0.0 and its config names https://127.0.0.1:PORT:
    hosts are sent to the MN's address on their route instead, which its certificate names."""
    from skylift.mn.host_add import repo_url_for
    from skylift.mn.https import names_for

    host = next(n for n in lab["nodes"] if n.get("netns"))
    gateway = lab["ns"]["gateway"]
    assert repo_url_for("https://127.0.0.1:8443", host["address"]) == \
        f"https://{gateway}:8443/repo"
    assert repo_url_for(f"https://{gateway}:8443/", host["address"]) == \
        f"https://{gateway}:8443/repo"
    assert gateway in names_for("0.0.0.0")


@pytest.mark.parametrize("args", [
    ["host", "add"],
    ["host", "add", "not-an-address", "--ssh-key", "/etc/hostname"],
    ["host", "add", "198.18.99.9"],  # no credentials
    ["host", "add", "198.18.99.9", "--ssh-key", "/nonexistent/key"],
    ["host", "add", "198.18.99.9", "--ssh-key", "/etc/hostname", "--node-root", "relative"],
    ["host", "remove"],
])
def test_usage_mistakes_exit_2_with_one_screen(args, tmp_path):
    env = dict(os.environ, SKYLIFT_HOME=str(tmp_path), COLUMNS="200")
    env.pop("SKYLIFT_SSH_PASSWORD", None)
    out = subprocess.run([sys.executable, "-m", "skylift.cli.main", *args], env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stdout + out.stderr
    assert len((out.stdout + out.stderr).splitlines()) <= 25
    assert not list(tmp_path.iterdir())  # a refusal leaves nothing
