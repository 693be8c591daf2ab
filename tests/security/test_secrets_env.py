"""Agents, the VM processes they start, and the lab's host farm never inherit the database
password from whoever started them (an MN, the lab, an operator's shell).

The password is only read from the environment of the process that needs it; every process
skylift starts for a node is started without it, so nothing below it can inherit it either.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from skylift.agent.client import http_client
from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.launch import restart_agent, start_agent, stop_agent
from skylift.agent.node import init_node
from skylift.db.engine import PASSWORD_ENV

SECRET = "hunter2-not-for-agents"
MARKER = "SKYLIFT_TEST_ENV_MARKER"  # an ordinary variable: still passed on
PACKAGES = {"skylift-agent": "4.3.12", "qemu-kvm": "2.12.0", "libvirt": "4.9.0"}


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


def assert_clean(pid: int, what: str) -> None:
    env = environ_of(pid)
    assert PASSWORD_ENV not in env, f"{what} (pid {pid}) inherited {PASSWORD_ENV}"
    assert SECRET not in "\0".join(env.values()), f"{what} (pid {pid}) holds the password"
    assert env.get(MARKER) == "kept", f"{what} (pid {pid}) lost its ordinary environment"


@pytest.fixture
def secret_env(monkeypatch):
    """The starting process holds the database password, as an MN or a lab run does."""
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    monkeypatch.setenv(MARKER, "kept")


@pytest.fixture
def node(tmp_path):
    root = tmp_path / "host1"
    init_node(root, "host", "c74", dict(PACKAGES))
    yield root
    kill_node_vms(root)


@pytest.fixture
def started():
    handles = []
    yield handles
    for handle in handles:
        stop_agent(handle, timeout=3.0)


def simd_pid(root: Path) -> int:
    return json.loads((root / "simd.pid").read_text())["pid"]


@pytest.mark.parametrize("driver", ["sim", "process"])
def test_an_agent_and_its_vms_do_not_inherit_the_db_password(driver, node, started,
                                                              secret_env):
    agent = start_agent(node, "host", driver=driver)
    started.append(agent)
    assert_clean(agent.pid, "the agent")
    with http_client(agent) as api:
        resp = api.post("/v1/vms", json={"uuid": uuid.uuid4().hex, "name": "vm 0"})
        assert resp.status_code == 200, resp.text
        vm = resp.json()
    if driver == "process":
        assert_clean(vm["pid"], "a VM process")
    else:
        assert_clean(simd_pid(node), "the sim hypervisor")
    again = restart_agent(agent)
    started.append(again)
    assert again.pid != agent.pid
    assert_clean(again.pid, "the restarted agent")


def test_an_agent_restarted_by_the_mn_over_the_local_transport(node, started, monkeypatch):
    """The MN holds the password (it serves from the database); NodeOps restarts a local
    agent through skylift.agent.launch, which leaves the password behind."""
    from skylift.mn.agent_upgrade import NodeOps
    from skylift.mn.resources import HOST, Resource

    agent = start_agent(node, "host", driver="sim")
    started.append(agent)
    monkeypatch.setenv(PASSWORD_ENV, SECRET)  # from here on, this process is the MN
    monkeypatch.setenv(MARKER, "kept")
    ops = NodeOps(node_root_for={"host-1": node})
    res = Resource(kind=HOST, uuid="host-1", name="host 1", address="127.0.0.1")
    try:
        asyncio.run(ops.restart_agent(res))
    finally:
        ops.close()
    again = ops.handles["host-1"]
    started.append(again)
    assert again.pid != agent.pid
    assert_clean(again.pid, "the agent the MN restarted")


def test_the_lab_farm_and_its_hypervisor_do_not_inherit_the_db_password(tmp_path, secret_env):
    from skylift.lab.farm import start_farm, stop_farm

    farm = start_farm(2, base_dir=tmp_path / "farm", agent_port=0, ssh_port=0,
                      release="4.3.12", first_address="127.63.0.1")
    try:
        assert_clean(farm.pid, "the host farm")
        assert_clean(simd_pid(farm.sim_root), "the farm's sim hypervisor")
    finally:
        stop_farm(farm)


def test_the_names_stripped_are_the_ones_the_secrets_are_read_from():
    """The ground floor names the variables (db and transport read them; agents may not
    import either): the names must be the ones the secrets are read from."""
    from skylift import secrets
    from skylift.agent import launch
    from skylift.transport import ssh

    assert PASSWORD_ENV in secrets.SECRET_ENV and ssh.PASSWORD_ENV in secrets.SECRET_ENV
    env = launch.agent_env({PASSWORD_ENV: SECRET, ssh.PASSWORD_ENV: SECRET, MARKER: "kept"})
    assert env == {MARKER: "kept"}


def test_a_command_run_on_the_local_node_gets_no_secret(secret_env):
    """What the MN runs on a local node (a package install) does not see its password."""
    from skylift.transport import LocalTransport

    seen = LocalTransport().run(["env"]).check("env").stdout
    assert PASSWORD_ENV not in seen and SECRET not in seen
