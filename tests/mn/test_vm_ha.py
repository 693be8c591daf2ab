"""VM HA (R-CLOUD-4) under a reconnect storm: the danger the upgrade procedure guards against.

The MN (re)starts while two hosts' agents are slow to come back (their upgrade restarts them
and takes seconds), so they miss pings. Their VMs keep running: they belong to the hypervisor.
With ha.enable true, HA judges those hosts down and starts their HA VMs on the other hosts of
the cluster: the same VM runs on two hosts (split brain). With ha.enable false, nothing starts.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from skylift.agent.launch import find_agent, start_agent, stop_agent
from skylift.mn.agent_upgrade import NodeOps
from skylift.mn.connections import ConnectionManager, ConnectOptions
from skylift.mn.vm_ha import VmHa

SLOW_HOSTS = ("host-0", "host-1")
SLOW = 2.5  # seconds an agent stays away while it is upgraded


class SlowUpgrade(NodeOps):
    """Real agent restarts, with the agent away for SLOW seconds (a slow upgrade)."""

    async def restart_agent(self, res) -> None:
        handle = find_agent(Path(self.node_root(res)))
        await asyncio.to_thread(stop_agent, handle)
        await asyncio.sleep(SLOW)  # pings to this host fail meanwhile
        self.handles[res.uuid] = await asyncio.to_thread(
            start_agent, handle.node_root, handle.role, host=handle.host, port=handle.port,
            os_release="c74")


def storm(cloud, repo_root, ha_enable: str) -> tuple[VmHa, dict]:
    cloud.set_setting("ha", "enable", ha_enable)

    async def main():
        options = ConnectOptions(agent_port=cloud.port, jitter=0, ping_interval=0.15,
                                 max_missed_pings=3, ping_timeout=1.0)
        cm = ConnectionManager(cloud.engine, options, repo_root=repo_root,
                               node_ops=SlowUpgrade(node_root_for=cloud.node_roots()))
        await cm.start(wait=False)  # the MN serves (and HA watches) while the storm runs
        ha = VmHa(cloud.engine, cm)
        await ha.start()
        try:
            deadline = time.monotonic() + 40
            while cm.initial_report is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            report = cm.initial_report
            assert report is not None and report.failures == {}
            assert report.agents_upgraded == len(SLOW_HOSTS)
            await asyncio.sleep(0.5)  # a few more rounds of pings and HA
            assert all(cm.state(n.uuid) == "Connected" for n in cloud.nodes)
        finally:
            await ha.stop()
            await cm.stop()
        return ha

    ha = asyncio.run(main())
    return ha, cloud.running_on()


@pytest.fixture
def storm_cloud(mn_cloud):
    return mn_cloud(hosts=4, vms=24, storage_agent=False,
                    agent_version_of=lambda n: "4.0.0" if n.name in SLOW_HOSTS else None)


def test_ha_on_during_storm_starts_vms_twice(storm_cloud, mn_repo):
    cloud = storm_cloud
    slow = {h.uuid for h in cloud.hosts if h.name in SLOW_HOSTS}
    ha_vms = {v["uuid"] for v in cloud.vms if v["ha_level"] == "NeverStop"
              and v["host_uuid"] in slow}
    assert len(ha_vms) == 4
    ha, running = storm(cloud, mn_repo(), "true")
    started = {s.vm_uuid for s in ha.starts}
    assert started == ha_vms  # each HA VM of a slow host was started once more...
    assert len(ha.starts) == len(ha_vms)
    for s in ha.starts:
        assert s.from_host in slow and s.to_host not in slow
        # ...while the original still runs: split brain
        assert sorted(running[s.vm_uuid]) == sorted([s.from_host, s.to_host])
    # the inventory follows HA: the VM is recorded on the host HA chose
    moved = dict(cloud.rows("SELECT uuid, host_uuid FROM vm_instances WHERE uuid IN (%s)"
                            % ",".join(f"'{u}'" for u in started)))
    assert moved == {s.vm_uuid: s.to_host for s in ha.starts}
    # VMs without HA were left alone
    others = {v["uuid"] for v in cloud.vms} - started
    assert all(len(running[u]) == 1 for u in others)


def test_ha_off_during_storm_starts_nothing(storm_cloud, mn_repo):
    cloud = storm_cloud
    ha, running = storm(cloud, mn_repo(), "false")
    assert ha.starts == []
    assert sorted(running) == sorted(v["uuid"] for v in cloud.vms)
    assert all(len(hosts) == 1 for hosts in running.values())
    assert {v["uuid"]: v["host_uuid"] for v in cloud.vms} == dict(
        cloud.rows("SELECT uuid, host_uuid FROM vm_instances WHERE host_uuid IS NOT NULL "
                   "AND state = 'Running'"))
