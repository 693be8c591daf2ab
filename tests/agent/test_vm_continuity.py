"""VMs belong to the hypervisor: they survive kill -9, restart and upgrade of the agent."""

from __future__ import annotations

import os

import pytest

from skylift.agent import packages as pkgs
from skylift.agent.client import http_client as client
from skylift.agent.hypervisor import probe
from skylift.agent.launch import kill_agent, restart_agent


DRIVERS = ["sim", "process"]


def vm_uuid(i: int) -> str:
    """The uuid of the i-th VM: 32 lowercase hex digits, the form of uuid.uuid4().hex."""
    return f"{i:032x}"


VM0, VM1 = vm_uuid(0), vm_uuid(1)


def _create(api, n: int) -> dict[str, dict]:
    vms = {}
    for i in range(n):
        resp = api.post("/v1/vms", json={"uuid": vm_uuid(i), "name": f"vm {i}", "ha": i == 0})
        assert resp.status_code == 200, resp.text
        vms[vm_uuid(i)] = resp.json()
    return vms


@pytest.mark.parametrize("driver", DRIVERS)
def test_kill_9_keeps_every_vm_and_restart_readopts(make_node, agents, driver):
    root = make_node()
    agent = agents.start(root, driver=driver)
    with client(agent) as api:
        vms = _create(api, 4)
    assert all(vm["state"] == "Running" and vm["boot_id"] for vm in vms.values())
    before = {u: probe(vm["endpoint"]) for u, vm in vms.items()}
    assert before == {u: vm["boot_id"] for u, vm in vms.items()}

    kill_agent(agent)
    assert not agent.alive()
    # nobody but the hypervisor holds the VMs now: each answers with the same boot id
    assert {u: probe(vm["endpoint"]) for u, vm in vms.items()} == before

    agent2 = agents.track(restart_agent(agent))
    assert agent2.pid != agent.pid
    with client(agent2) as api:
        listed = {vm["uuid"]: vm for vm in api.get("/v1/vms").json()}
    assert {u: vm["boot_id"] for u, vm in listed.items()} == before
    assert all(vm["state"] == "Running" for vm in listed.values())
    assert listed[VM0]["ha"] is True and listed[VM1]["ha"] is False
    assert {u: probe(vm["endpoint"]) for u, vm in listed.items()} == before


@pytest.mark.parametrize("driver", DRIVERS)
def test_reboot_stop_start_change_the_boot_id_only_on_a_real_restart(make_node, agents, driver):
    root = make_node()
    agent = agents.start(root, driver=driver)
    with client(agent) as api:
        vm = _create(api, 1)[VM0]
        again = api.post("/v1/vms", json={"uuid": VM0, "name": "vm 0"}).json()
        assert again["boot_id"] == vm["boot_id"]  # creating twice equals creating once
        assert api.post(f"/v1/vms/{VM0}/start").json()["boot_id"] == vm["boot_id"]

        rebooted = api.post(f"/v1/vms/{VM0}/reboot").json()
        assert rebooted["state"] == "Running" and rebooted["boot_id"] != vm["boot_id"]
        assert probe(rebooted["endpoint"]) == rebooted["boot_id"]

        stopped = api.post(f"/v1/vms/{VM0}/stop").json()
        assert stopped["state"] == "Stopped" and stopped["boot_id"] is None
        assert probe(rebooted["endpoint"], timeout=0.5) is None

        started = api.post(f"/v1/vms/{VM0}/start").json()
        assert started["boot_id"] not in (None, vm["boot_id"], rebooted["boot_id"])
        assert probe(started["endpoint"]) == started["boot_id"]

        assert api.delete(f"/v1/vms/{VM0}").status_code == 200
        assert probe(started["endpoint"], timeout=0.5) is None
        missing = api.post(f"/v1/vms/{VM0}/start")
        assert missing.status_code == 404 and missing.json()["error"] == "NoSuchVm"
        assert api.get("/v1/vms").json() == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_agent_upgrade_reports_new_version_after_restart_vms_untouched(make_node, agents, driver):
    root = make_node(os_release="c74")
    agent = agents.start(root, driver=driver)
    with client(agent) as api:
        vms = _create(api, 3)
        version = api.get("/v1/version").json()
        assert version == {**version, "agent_version": "4.0.0", "os_release": "c74",
                           "qemu": "2.12.0", "libvirt": "4.9.0"}
        agent_boot = api.get("/v1/boot-id").json()["agent_boot_id"]

    assert pkgs.install(root, "skylift-agent", "4.3.12") == "4.0.0"
    with client(agent) as api:  # the running agent is still the old one
        assert api.get("/v1/version").json()["agent_version"] == "4.0.0"

    agent2 = agents.track(restart_agent(agent))
    with client(agent2) as api:
        assert api.get("/v1/version").json()["agent_version"] == "4.3.12"
        assert api.get("/v1/boot-id").json()["agent_boot_id"] != agent_boot
        listed = {vm["uuid"]: vm["boot_id"] for vm in api.get("/v1/vms").json()}
    assert listed == {u: vm["boot_id"] for u, vm in vms.items()}
    assert all(probe(vm["endpoint"]) == vm["boot_id"] for vm in vms.values())


def test_vm_processes_are_not_children_of_the_agent(make_node, agents):
    root = make_node()
    agent = agents.start(root, driver="process")
    with client(agent) as api:
        vm = _create(api, 1)[VM0]
    with open(f"/proc/{vm['pid']}/stat") as fh:
        ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
    assert ppid != agent.pid
    assert os.getsid(vm["pid"]) != os.getsid(agent.pid)
