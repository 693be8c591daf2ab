"""VM, volume and host work through the MN API, end to end with real agents (sim hypervisor):
create, stop, start, reboot, migrate, delete; volumes; the QEMU-per-cluster rule on host add;
work on a host that is not Connected is refused (409)."""

from __future__ import annotations

import time

import httpx
from mn_kit import db_url

from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.hypervisor.simaddr import use_shared_daemon
from skylift.agent.node import init_node
from skylift.agent.hypervisor import probe
from skylift.agent.launch import free_port, start_agent, stop_agent
from skylift.mn.launch import start_mn, stop_mn


def wait_for(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def connected(client: httpx.Client, uuid: str) -> bool:
    return client.get(f"/v1/hosts/{uuid}/connection").json()["status"] == "Connected"


def agent_vm(cloud, host_uuid: str, vm_uuid: str) -> dict | None:
    with cloud.client(host_uuid) as agent:
        return next((v for v in agent.list_vms() if v["uuid"] == vm_uuid), None)


def extra_host(cloud, tmp_path, name: str, address: str, qemu: str):
    root = tmp_path / "extra" / name
    init_node(root, "host", "c74", {"skylift-agent": "4.3.12", "qemu-kvm": qemu,
                                    "libvirt": "4.9.0"})
    use_shared_daemon(root, cloud.shared_root)
    return start_agent(root, "host", host=address, port=cloud.port, os_release="c74")


def test_vm_lifecycle_volumes_and_hosts_through_agents(mn_cloud, tmp_path):
    cloud = mn_cloud(hosts=2, vms=0, start_vms=False)
    cloud.set_setting("host", "pingInterval", "1")
    cloud.set_setting("host", "maxMissedPings", "1")
    mn = start_mn(db_url(cloud.db), port=free_port(), agent_port=cloud.port,
                  env={"SKYLIFT_HOME": str(tmp_path / "home")})
    extras = []
    try:
        client = mn.client(timeout=30)
        h1, h2 = cloud.hosts[0].uuid, cloud.hosts[1].uuid
        for h in (h1, h2):
            wait_for(lambda h=h: connected(client, h), what=f"host {h} connected")

        vm = client.post("/v1/vm_instances", json={"name": "web-1", "host_uuid": h1, "ha": True})
        assert vm.status_code == 201, vm.text
        vm = vm.json()
        assert vm["state"] == "Running" and vm["ha_level"] == "NeverStop"
        assert vm["root_volume_uuid"]
        first_boot = agent_vm(cloud, h1, vm["uuid"])["boot_id"]
        assert first_boot == vm["boot_id"]

        stopped = client.post(f"/v1/vm_instances/{vm['uuid']}/stop").json()
        assert stopped["state"] == "Stopped" == agent_vm(cloud, h1, vm["uuid"])["state"]
        assert client.post(f"/v1/vm_instances/{vm['uuid']}/start").json()["state"] == "Running"
        rebooted = client.post(f"/v1/vm_instances/{vm['uuid']}/reboot").json()
        assert rebooted["boot_id"] and rebooted["boot_id"] != first_boot
        assert client.post(f"/v1/vm_instances/{vm['uuid']}/pause").status_code == 400

        moved = client.post(f"/v1/vm_instances/{vm['uuid']}/migrate", json={"host_uuid": h2})
        assert moved.status_code == 200, moved.text
        assert (moved.json()["host_uuid"], moved.json()["last_host_uuid"]) == (h2, h1)
        assert cloud.running_on()[vm["uuid"]] == [h2]

        # volumes: attach on the VM's host, detach, delete
        ps = client.get("/v1/primary_storages").json()["items"][0]["uuid"]
        vol = client.post("/v1/volumes", json={"name": "data-1", "ps_uuid": ps,
                                               "size": 1 << 30, "shareable": True}).json()
        assert vol["format"] == "raw"
        attached = client.post(f"/v1/volumes/{vol['uuid']}/attach", json={"vm_uuid": vm["uuid"]})
        assert attached.status_code == 200, attached.text
        with cloud.client(h2) as agent:
            volumes = agent.list_volumes()
        assert {v["uuid"]: v["attached_to"] for v in volumes}[vol["uuid"]] == vm["uuid"]
        assert client.delete(f"/v1/volumes/{vol['uuid']}").status_code == 409
        assert client.post(f"/v1/volumes/{vol['uuid']}/detach").json()["vm_uuid"] is None
        assert client.delete(f"/v1/volumes/{vol['uuid']}").status_code == 200

        # R-CLOUD-5: a host with another QEMU is refused from the cluster, welcome in a new one
        cluster = client.get(f"/v1/hosts/{h1}").json()["cluster_uuid"]
        zone = client.get(f"/v1/clusters/{cluster}").json()["zone_uuid"]
        prefix = cloud.hosts[0].address.rsplit(".", 2)[0]
        new_qemu = extra_host(cloud, tmp_path, "new-1", f"{prefix}.4.1", "4.2.0")
        extras.append(new_qemu)
        refused = client.post("/v1/hosts", json={"name": "new-1", "cluster_uuid": cluster,
                                                 "management_ip": new_qemu.host})
        assert refused.status_code == 409, refused.text
        body = refused.json()
        assert body["error"] == "QemuMismatch" and "new cluster" in body["next"]
        assert "4.2.0" in body["what"] and "2.12.0" in body["what"]
        assert client.get("/v1/hosts").json()["total"] == 2  # nothing recorded
        fresh = client.post("/v1/clusters", json={"name": "qemu-4.2", "zone_uuid": zone}).json()
        added = client.post("/v1/hosts", json={"name": "new-1", "cluster_uuid": fresh["uuid"],
                                               "management_ip": new_qemu.host})
        assert added.status_code == 201, added.text
        assert added.json()["status"] == "Connected"
        assert client.get(f"/v1/clusters/{fresh['uuid']}").json()["qemu_version"] == "4.2.0"
        old_qemu = extra_host(cloud, tmp_path, "old-1", f"{prefix}.4.2", "2.12.0")
        extras.append(old_qemu)
        assert client.post("/v1/hosts", json={"name": "old-1", "cluster_uuid": fresh["uuid"],
                                              "management_ip": old_qemu.host}).status_code == 409
        assert client.delete(f"/v1/hosts/{added.json()['uuid']}").status_code == 200
        assert client.get(f"/v1/clusters/{fresh['uuid']}").json()["qemu_version"] is None

        # a host whose agent is gone: VM work on it is refused, not attempted. VM HA is off
        # (as during an upgrade), else the HA VM would be started again on host 1
        assert client.put("/v1/global-settings/ha/enable", json={"value": False}).status_code \
            == 200
        endpoint = agent_vm(cloud, h2, vm["uuid"])["endpoint"]
        boot = probe(endpoint)
        stop_agent(cloud.node(h2).handle)
        wait_for(lambda: not connected(client, h2), what="host 2 not connected")
        refused = client.post(f"/v1/vm_instances/{vm['uuid']}/stop")
        assert refused.status_code == 409
        assert refused.json()["error"] in ("HostReconnecting", "HostDisconnected")
        assert probe(endpoint) == boot  # the VM itself kept running
        cloud.node(h2).handle = start_agent(cloud.node(h2).root, "host",
                                            host=cloud.node(h2).address, port=cloud.port,
                                            os_release="c74")
        wait_for(lambda: connected(client, h2), what="host 2 connected again")
        assert client.delete(f"/v1/vm_instances/{vm['uuid']}").status_code == 200
        assert agent_vm(cloud, h2, vm["uuid"]) is None
        assert client.get(f"/v1/vm_instances/{vm['uuid']}").status_code == 404
        assert client.get(f"/v1/volumes/{vm['root_volume_uuid']}").status_code == 404
        client.close()
    finally:
        assert stop_mn(mn) == 0
        for handle in extras:
            stop_agent(handle, timeout=3.0)
            kill_node_vms(handle.node_root)
