"""The agent service of a node without systemd: started from the installed code, restarted
onto a new version, stopped by identity; a VM of the process driver outlives its restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from skylift.agent.code_install import install_code
from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.launch import free_port
from skylift.agent.service import ServiceSpec, agent_unit, configure, restart, start, status, stop
from skylift.processes import ProcessId
from skylift.release.agent_code import agent_deps_bytes, agent_package_bytes, code_digest_of_package


def put(tmp: Path, root: Path, name: str, version: str, data: bytes) -> None:
    file = tmp / f"{name}-{version}.pkg"
    file.write_bytes(data)
    install_code(root, name, version, file)


def call(port: int, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST" if body else "GET",
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def node(tmp_path):
    root = tmp_path / "node"
    put(tmp_path, root, "python3-agent-deps", "4.0.0", agent_deps_bytes())
    put(tmp_path, root, "skylift-agent", "4.0.0", agent_package_bytes("4.0.0"))
    yield root
    stop(root, timeout=3)
    kill_node_vms(root)


def test_the_unit_runs_the_installed_code_through_the_launcher(node):
    unit = agent_unit(node, ServiceSpec("host", "127.0.0.1", 7070, "process", "c74"))
    assert unit.argv[:4] == (str(node.resolve() / "agent/run"), "-m", "skylift.agent", "serve")
    assert "--node-root" in unit.argv and unit.kill_mode == "process"


def test_the_agent_unit_passes_systemd_analyze_verify(tmp_path, node):
    from skylift.units import verify

    unit = agent_unit(node, ServiceSpec("host", "127.0.0.1", 7070, "process", "c74"))
    path = unit.write(tmp_path / "units")
    assert verify(path) == []
    assert "KillMode=process" in path.read_text()  # stopping the agent never stops its VMs
    broken = tmp_path / "units" / "skylift-broken.service"
    broken.write_text(path.read_text().replace("KillMode=process", "KillMode=sometimes"))
    assert verify(broken)  # the check can fail: a bad unit is named


def test_start_restart_onto_a_new_version_and_stop_by_identity(tmp_path, node):
    port = free_port()
    configure(node, ServiceSpec("host", "127.0.0.1", port, "process", "c74"))
    first = start(node)
    assert first["running"] and first["code_version"] == "4.0.0"
    assert start(node)["pid"] == first["pid"]  # already running: left alone
    doc = call(port, "/v1/version")
    assert (doc["agent_version"], doc["code"]["source"]) == ("4.0.0", "package")
    vm = call(port, "/v1/vms", {"uuid": uuid.uuid4().hex, "name": "vm1"})
    put(tmp_path, node, "skylift-agent", "4.3.12", agent_package_bytes("4.3.12"))
    second = restart(node)
    assert second["running"] and second["pid"] != first["pid"]
    assert not ProcessId(first["pid"], first["start"]).alive()
    doc = call(port, "/v1/version")
    assert doc["agent_version"] == doc["code"]["version"] == "4.3.12"
    assert doc["code"]["digest"] == code_digest_of_package(agent_package_bytes("4.3.12"))
    again = call(port, f"/v1/vms/{vm['uuid']}")
    assert again["boot_id"] == vm["boot_id"]  # the agent restarted, the VM did not
    done = subprocess.run([sys.executable, "-m", "skylift.agent.service", "--node-root",
                           str(node), "stop", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["running"] is False
    assert not ProcessId(second["pid"], second["start"]).alive()
    assert status(node)["running"] is False


def test_usage_and_an_unconfigured_service(tmp_path):
    run = [sys.executable, "-m", "skylift.agent.service", "--node-root", str(tmp_path)]
    assert subprocess.run([*run, "frobnicate"], capture_output=True).returncode == 2
    done = subprocess.run([*run, "start"], capture_output=True, text=True)
    assert done.returncode == 2 and "not configured" in done.stderr
