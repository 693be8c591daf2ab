"""The connection manager against real agents and a real (seeded) database: connect, states,
require_connected, agent(), pings, and batched status writes."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from skylift.agent.launch import kill_agent, start_agent
from skylift.errors import HostDisconnected, NoSuchResource
from skylift.mn.connections import ConnectionManager, ConnectOptions
from skylift.mn.resources import PendingWrites, storage_address


async def until(pred, timeout: float = 15.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def test_connect_all_states_and_agent(mn_cloud):
    cloud = mn_cloud(hosts=4, vms=12)

    async def main():
        progress = []
        cm = ConnectionManager(cloud.engine,
                               ConnectOptions(agent_port=cloud.port, jitter=0.01,
                                              ping_interval=0.2, max_missed_pings=2),
                               on_progress=lambda d, t, f: progress.append((d, t, f)))
        await cm.start()
        try:
            report = cm.initial_report
            assert report.failures == {}
            assert report.total == len(cloud.nodes) == report.connected
            assert report.by_kind == {"host": 4, "vrouter": len(cloud.nodes) - 5,
                                      "primary-storage": 1}
            assert progress[-1] == (report.total, report.total, 0)
            assert all(cm.state(n.uuid) == "Connected" for n in cloud.nodes)
            assert cm.counts()["Connected"] == len(cloud.nodes)
            host = cloud.hosts[0]
            cm.require_connected(host.uuid)
            version = await cm.connect_host(host.uuid)
            assert version["agent_version"] == "4.3.12" and version["role"] == "host"
            # VM work goes to the host's own agent
            vms = {v["uuid"] for v in await cm.agent(host.uuid).list_vms()}
            assert vms == {v["uuid"] for v in cloud.vms if v["host_uuid"] == host.uuid}
            with pytest.raises(NoSuchResource):
                cm.agent("nope")
            assert cm.state("nope") == "Disconnected"
        finally:
            await cm.stop()

    asyncio.run(main())
    # the states reached the database
    assert {r.status for r in cloud.rows("SELECT status FROM hosts")} == {"Connected"}
    assert {r.status for r in cloud.rows("SELECT status FROM vpc_vrouters")} == {"Connected"}
    ps = cloud.rows("SELECT status FROM primary_storages WHERE url LIKE 'ceph://%'")
    assert [r.status for r in ps] == ["Connected"]


def test_lost_agent_goes_disconnected_then_reconnects(mn_cloud):
    cloud = mn_cloud(hosts=3, vms=0, storage_agent=False)
    # the agent port comes from the global setting host.agentPort when not given
    cloud.set_setting("host", "agentPort", str(cloud.port))

    async def main():
        cm = ConnectionManager(cloud.engine, ConnectOptions(jitter=0, ping_interval=0.1,
                                                         max_missed_pings=2))
        await cm.start()
        try:
            assert cm.agent_port == cloud.port
            host = cloud.hosts[1]
            kill_agent(host.handle)
            await until(lambda: cm.state(host.uuid) == "Disconnected")
            assert cm.missed_pings(host.uuid) >= 2
            with pytest.raises(HostDisconnected, match=f"host {host.name} is disconnected"):
                cm.require_connected(host.uuid)
            await cm.flush()
            assert cloud.rows(f"SELECT status FROM hosts WHERE uuid = '{host.uuid}'")[0][0] \
                == "Disconnected"
            # the agent comes back: the next ping that answers reconnects the host
            host.handle = await asyncio.to_thread(start_agent, host.root, "host",
                                                  host=host.address, port=cloud.port,
                                                  os_release="c74")
            await until(lambda: cm.state(host.uuid) == "Connected")
            assert cm.missed_pings(host.uuid) == 0
            cm.require_connected(host.uuid)
        finally:
            await cm.stop()

    asyncio.run(main())
    assert {r.status for r in cloud.rows("SELECT status FROM hosts")} == {"Connected"}


def test_unreachable_agents_are_reported_and_disconnected(mn_cloud):
    cloud = mn_cloud(hosts=2, vms=0, storage_agent=False)
    with cloud.engine.begin() as conn:  # a host whose agent nobody runs
        conn.execute(sa.text("UPDATE hosts SET management_ip = '127.0.0.254' "
                             "WHERE name = 'host-1'"))

    async def main():
        cm = ConnectionManager(cloud.engine, ConnectOptions(agent_port=cloud.port, jitter=0,
                                                            ping_interval=5, timeout=2.0))
        await cm.start()
        try:
            report = cm.initial_report
            lost = cloud.hosts[1]
            assert list(report.failures) == [lost.uuid]
            assert "did not answer" in report.failures[lost.uuid]
            assert cm.state(lost.uuid) == "Disconnected"
            assert cm.state(cloud.hosts[0].uuid) == "Connected"
            report2 = await cm.reconnect_all()
            assert report2.connected == report2.total - 1 and report2.per_second > 0
        finally:
            await cm.stop()

    asyncio.run(main())


def test_status_writes_are_batched(mn_cloud):
    cloud = mn_cloud(hosts=1, vms=0, storage_agent=False)
    with cloud.engine.begin() as conn:  # 1,200 more hosts in the inventory
        row = dict(conn.execute(sa.text("SELECT * FROM hosts")).first()._mapping)
        conn.execute(sa.text("INSERT INTO hosts (uuid, zone_uuid, cluster_uuid, name, "
                             "management_ip, state, status, os_release, qemu_version, "
                             "libvirt_version, agent_version, libvirt_auto_upgrade) VALUES "
                             "(:uuid, :zone_uuid, :cluster_uuid, :name, :management_ip, "
                             ":state, :status, :os_release, :qemu_version, :libvirt_version, "
                             ":agent_version, 1)"),
                     [{**row, "uuid": f"{i:032x}", "name": f"extra-{i}"} for i in range(1200)])
    updates = []
    sa.event.listen(cloud.engine, "before_cursor_execute",
                    lambda conn, cur, stmt, params, ctx, many: updates.append(stmt)
                    if stmt.startswith("UPDATE") else None)
    batch = PendingWrites()
    for i in range(1200):
        batch.status[("host", f"{i:032x}")] = "Connecting" if i % 2 else "Disconnected"
        batch.versions[("host", f"{i:032x}")] = {"agent_version": "4.3.12"}
    statements = batch.write(cloud.engine)
    # 2 states x ceil(600/500) chunks + one executemany for the versions
    assert statements == len(updates) == 5
    counts = dict(cloud.rows("SELECT status, COUNT(*) FROM hosts WHERE name LIKE 'extra-%' "
                             "GROUP BY status"))
    assert counts == {"Connecting": 600, "Disconnected": 600}


def test_storage_address():
    assert storage_address("ceph://127.0.9.1/pool") == "127.0.9.1"
    assert storage_address("nfs://10.0.0.5:/export") == "10.0.0.5"
    assert storage_address("/ps/abc") is None
    assert storage_address(None) is None
