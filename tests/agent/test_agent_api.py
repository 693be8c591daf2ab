"""The agent API beyond VMs: health, token auth, volumes, packages, the CLI entry."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from skylift.agent.client import http_client as client
from skylift.agent.launch import free_port
from skylift.agent.server import TOKEN_ENV

# uuids as the management node makes them (uuid.uuid4().hex: 32 lowercase hex digits)
VM1, VM2, VOL1, NOPE = (f"{n:032x}" for n in (0x1, 0x2, 0x101, 0xdead))


def test_token_guards_everything_but_health(make_node, agents, tmp_path, monkeypatch):
    root = make_node()
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    agent = agents.start(root, token_file=token_file)
    with client(agent) as api:
        assert api.get("/v1/health").status_code == 200
        denied = api.get("/v1/vms")
        assert denied.status_code == 401
        assert "s3cret" not in denied.text
        assert api.get("/v1/vms", headers={"X-Skylift-Token": "wrong"}).status_code == 401
    with client(agent, token="s3cret-token") as api:
        assert api.get("/v1/vms").json() == []
    # the token never appears on the agent's command line
    with open(f"/proc/{agent.pid}/cmdline", "rb") as fh:
        assert b"s3cret" not in fh.read()


def test_volumes_create_attach_detach_delete(make_node, agents):
    root = make_node(name="ps1")
    agent = agents.start(root)
    with client(agent) as api:
        api.post("/v1/vms", json={"uuid": VM1, "name": "one"})
        vol = api.post("/v1/volumes", json={"uuid": VOL1, "size": 1 << 30}).json()
        assert vol["attached_to"] is None and vol["format"] == "qcow2"
        assert api.post("/v1/volumes", json={"action": "attach", "uuid": VOL1,
                                             "vm_uuid": NOPE}).status_code == 404
        att = api.post("/v1/volumes", json={"action": "attach", "uuid": VOL1, "vm_uuid": VM1})
        assert att.json()["attached_to"] == VM1
        busy = api.post("/v1/volumes", json={"action": "delete", "uuid": VOL1})
        assert busy.status_code == 409 and "detach" in busy.json()["next"]
        api.post("/v1/volumes", json={"action": "detach", "uuid": VOL1})
        assert api.post("/v1/volumes", json={"action": "delete", "uuid": VOL1}).status_code == 200
        assert api.get("/v1/volumes").json() == []


def test_packages_api_and_boot_id(make_node, agents):
    root = make_node()
    agent = agents.start(root)
    with client(agent) as api:
        got = api.post("/v1/packages", json={"name": "libvirt", "version": "5.0.0"}).json()
        assert got["previous"] == "4.9.0"
        assert api.get("/v1/version").json()["libvirt"] == "5.0.0"
        boot = api.get("/v1/boot-id").json()
        assert boot["pid"] == agent.pid and boot["agent_boot_id"]


@pytest.mark.parametrize("role", ["primary-storage", "backup-storage", "vrouter"])
def test_every_role_serves(make_node, agents, role):
    root = make_node(name=role, role=role)
    agent = agents.start(root, role=role)
    with client(agent) as api:
        assert api.get("/v1/health").json()["role"] == role


def test_cli_agent_serve(make_node, tmp_path):
    root = make_node()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "skylift.cli.main", "agent", "serve",
                             "--role", "host", "--node-root", str(root), "--port", str(port),
                             "--driver", "process"], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/v1/version").json()["driver"] == "process"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_refuses_a_node_root_of_another_role(make_node):
    root = make_node()
    out = subprocess.run([sys.executable, "-m", "skylift.cli.main", "agent", "serve", "--role",
                          "vrouter", "--node-root", str(root), "--port", str(free_port())],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "belongs to a host agent" in " ".join(out.stderr.split())


def test_agent_client_raises_typed_errors(make_node, agents):
    from skylift.agent.client import AgentClient
    from skylift.agent.launch import kill_agent
    from skylift.errors import AgentError, NoSuchVm

    agent = agents.start(make_node())
    with AgentClient(agent) as api:
        assert api.create_vm(VM1, "one")["state"] == "Running"
        assert api.vm_action(VM1, "stop")["state"] == "Stopped"
        with pytest.raises(NoSuchVm):
            api.vm_action(VM2, "start")
        kill_agent(agent)
        with pytest.raises(AgentError, match="did not answer"):
            api.version()


def test_inventory_is_version_and_vms_in_one_answer_from_4_3_12(make_node, agents):
    new = agents.start(make_node("new", packages={"skylift-agent": "4.3.12"}))
    old = agents.start(make_node("old", packages={"skylift-agent": "3.7.1"}))
    with client(new) as api:
        api.post("/v1/vms", json={"uuid": VM1, "name": "one"})
        both = api.get("/v1/inventory").json()
        assert both["version"] == api.get("/v1/version").json()
        assert both["vms"] == api.get("/v1/vms").json() and both["vms"][0]["uuid"] == VM1
    with client(old) as api:  # as an agent of a release before it answers
        gone = api.get("/v1/inventory")
        assert gone.status_code == 404 and gone.json()["error"] == "HttpError"
