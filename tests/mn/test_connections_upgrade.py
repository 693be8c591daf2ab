"""Agent auto-upgrade on connect (R-CON-3) and host packages per host.updatePkgWhenConnect,
with real agents restarted by the connection manager, and VMs that never stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from skylift.errors import HostReconnecting
from skylift.mn.agent_upgrade import NodeOps, RepoCatalog
from skylift.mn.connections import ConnectionManager, ConnectOptions
from skylift.transport import LocalTransport


def boot_ids(cloud) -> dict[str, str]:
    out = {}
    for host in cloud.hosts:
        with cloud.client(host.uuid) as c:
            out.update({v["uuid"]: v["boot_id"] for v in c.list_vms()})
    return out


class RecordingTransport(LocalTransport):
    """The real local transport, remembering what it ran (to show the pluggable path)."""

    def __init__(self, log: list) -> None:
        self.log = log

    def run(self, argv, input=None, timeout=None):
        self.log.append(list(argv))
        return super().run(argv, input=input, timeout=timeout)


@pytest.mark.parametrize("update_pkgs", ["true", "false"])
def test_old_agents_upgraded_on_connect(mn_cloud, mn_repo, update_pkgs):
    cloud = mn_cloud(hosts=3, vms=9, agent_version="4.0.0", qemu="2.9.0", libvirt="3.9.0")
    repo_root = mn_repo("4.3.12", ("c74",))
    cloud.set_setting("host", "updatePkgWhenConnect", update_pkgs)
    before = boot_ids(cloud)
    assert before
    ran: list = []
    refused: list[str] = []

    async def main():
        ops = NodeOps(node_root_for=cloud.node_roots(),
                      transport_for=lambda res: RecordingTransport(ran))
        cm = ConnectionManager(cloud.engine, ConnectOptions(agent_port=cloud.port, jitter=0,
                                                            ping_interval=5),
                               repo_root=repo_root, node_ops=ops)
        await cm.start(wait=False)
        try:
            host = cloud.hosts[0]
            # while its agent is being upgraded the host is Connecting: VM work is refused
            deadline = time.monotonic() + 20
            while cm.state(host.uuid) != "Connected" and time.monotonic() < deadline:
                if cm.state(host.uuid) == "Connecting":
                    try:
                        cm.require_connected(host.uuid)
                    except HostReconnecting as exc:
                        refused.append(exc.what)
                await asyncio.sleep(0.02)
            while cm.initial_report is None:
                await asyncio.sleep(0.05)
            report = cm.initial_report
            assert report.failures == {}
            assert report.agents_upgraded == len(cloud.nodes)
            assert report.packages_updated == (3 if update_pkgs == "true" else 0)
            assert all(cm.state(n.uuid) == "Connected" for n in cloud.nodes)
            cm.require_connected(host.uuid)
            assert {v[1:] for v in cm.agent_upgrades} == {("4.0.0", "4.3.12")}
            # a second storm finds nothing to upgrade
            again = await cm.reconnect_all()
            assert again.agents_upgraded == 0 and again.packages_updated == 0
        finally:
            await cm.stop()

    asyncio.run(main())
    assert refused and refused[0] == f"host {cloud.hosts[0].name} is reconnecting, retry later"
    # every agent runs the repo's version now, and the inventory says so
    for n in cloud.nodes:
        with cloud.client(n.uuid) as c:
            assert c.version()["agent_version"] == "4.3.12"
    assert {tuple(r) for r in cloud.rows("SELECT agent_version FROM hosts")} == {("4.3.12",)}
    assert {tuple(r) for r in cloud.rows("SELECT agent_version FROM vpc_vrouters")} == \
        {("4.3.12",)}
    packages = {tuple(r) for r in cloud.rows("SELECT qemu_version, libvirt_version FROM hosts")}
    if update_pkgs == "true":
        # c74 with QEMU 2.9: libvirt goes to 4.9.0; an upgraded host gets QEMU 2.12, never 4.2
        assert packages == {("2.12.0", "4.9.0")}
    else:
        assert packages == {("2.9.0", "3.9.0")}
    # the install went through the transport, with the packages command, per node
    installs = [a for a in ran if "skylift.agent.packages" in a]
    assert len([a for a in installs if "skylift-agent" in a]) == len(cloud.nodes)
    assert all(a[-3:-2] == ["install"] for a in installs)
    assert any((n.root / "cache" / "skylift-agent-4.3.12.c74.pkg").is_file() for n in cloud.nodes)
    # an agent upgrade never stops a VM: same boot ids
    assert boot_ids(cloud) == before


def test_repo_catalog_keeps_upgraded_hosts_on_qemu_212(mn_repo):
    repo = RepoCatalog(mn_repo("4.3.12", ("c74", "c76")))
    assert repo.agent_version("c76") == "4.3.12"
    # a c76 host of an older cloud: QEMU 2.12 stays (4.2 is for new installs), libvirt moves
    assert [(p.name, p.version) for p in repo.host_updates("c76", "2.12.0", "4.1.0")] == \
        [("libvirt", "4.9.0")]
    assert [(p.name, p.version) for p in repo.host_updates("c74", "2.9.0", "3.9.0")] == \
        [("libvirt", "4.9.0"), ("qemu", "2.12.0")]
    assert repo.host_updates("c76", "2.12.0", "4.9.0") == []
    assert RepoCatalog(None).agent_version("c74") is None


def test_upgrade_without_node_root_is_a_clear_failure(mn_cloud, mn_repo):
    cloud = mn_cloud(hosts=1, vms=0, agent_version="4.0.0", storage_agent=False)
    repo_root = mn_repo()

    async def main():
        cm = ConnectionManager(cloud.engine, ConnectOptions(agent_port=cloud.port, jitter=0,
                                                            ping_interval=5),
                               repo_root=repo_root)
        await cm.start()
        try:
            report = cm.initial_report
            host = cloud.hosts[0]
            assert "node root is not known" in report.failures[host.uuid]
            assert cm.state(host.uuid) == "Disconnected"
        finally:
            await cm.stop()

    asyncio.run(main())
