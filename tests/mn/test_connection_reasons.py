"""Why a resource is pending, as the MN tells it, and convergence: a resource that fails to
connect is retried on a short backoff (not the ping interval) and finished once it answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from skylift.agent.launch import find_agent, kill_agent, start_agent, stop_agent
from skylift.mn.agent_upgrade import NodeOps
from skylift.mn.connections import ConnectionManager, ConnectOptions

# pings never run in these tests: only the convergence retries can bring a resource back
NO_PINGS = 3600


async def until(pred, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)


def pending_of(cm: ConnectionManager) -> dict[str, dict]:
    return {item["uuid"]: item for item in cm.pending()["pending"]}


def test_a_dead_agent_is_pending_refused_and_finished_by_retries_when_it_returns(mn_cloud):
    cloud = mn_cloud(hosts=3, vms=6)
    host = cloud.hosts[0]
    kill_agent(host.handle)

    async def main():
        cm = ConnectionManager(cloud.engine, ConnectOptions(
            agent_port=cloud.port, jitter=0, ping_interval=NO_PINGS, retry_max=0.5))
        await cm.start()
        try:
            assert list(cm.initial_report.failures) == [host.uuid]
            item = pending_of(cm)[host.uuid]
            assert (item["reason"], item["state"], item["name"]) == (
                "refused", "Disconnected", host.name)
            assert "start the agent" in item["remedy"]
            await until(lambda: pending_of(cm)[host.uuid]["attempts"] >= 3)  # it keeps trying
            assert cm.pending()["by_reason"] == {"refused": 1}
            host.handle = await asyncio.to_thread(
                start_agent, host.root, "host", host=host.address, port=cloud.port,
                os_release="c74")
            await until(lambda: cm.state(host.uuid) == "Connected", timeout=10)
            assert cm.pending()["pending"] == []
        finally:
            await cm.stop()

    asyncio.run(main())


def test_retries_stop_when_the_window_shuts_and_converge_reopens_it(mn_cloud):
    cloud = mn_cloud(hosts=2, vms=2, storage_agent=False)
    host = cloud.hosts[0]
    kill_agent(host.handle)

    async def main():
        cm = ConnectionManager(cloud.engine, ConnectOptions(
            agent_port=cloud.port, jitter=0, ping_interval=NO_PINGS, retry_max=0.3,
            converge_window=1.0))
        await cm.start()
        try:
            await asyncio.sleep(1.5)  # the window after the start is over
            tries = pending_of(cm)[host.uuid]["attempts"]
            assert pending_of(cm)[host.uuid]["next_retry_in"] is None
            await asyncio.sleep(1.0)
            assert pending_of(cm)[host.uuid]["attempts"] == tries  # no retries meanwhile
            summary = cm.converge(30)  # on demand: retried now, and on a backoff after
            assert summary["converging"] is True
            await until(lambda: pending_of(cm)[host.uuid]["attempts"] > tries, timeout=5)
        finally:
            await cm.stop()

    asyncio.run(main())


def test_a_host_on_an_os_release_the_repo_does_not_serve_is_refused_by_name(mn_cloud, mn_repo):
    cloud = mn_cloud(hosts=2, vms=2, os_release="c76", agent_version="4.0.0",
                     storage_agent=False)
    repo_root = mn_repo("4.3.12", ("c74",))

    async def main():
        cm = ConnectionManager(cloud.engine, ConnectOptions(
            agent_port=cloud.port, jitter=0, ping_interval=NO_PINGS),
            repo_root=repo_root, node_ops=NodeOps(node_root_for=cloud.node_roots()))
        await cm.start()
        try:
            pending = pending_of(cm)
            assert {pending[h.uuid]["reason"] for h in cloud.hosts} == {"os-release-mismatch"}
            assert "same-repo rule" in pending[cloud.hosts[0].uuid]["remedy"]
            assert "c76" in pending[cloud.hosts[0].uuid]["detail"]
        finally:
            await cm.stop()

    asyncio.run(main())
    # nothing was installed on the hosts: their agents still run the old code
    for h in cloud.hosts:
        with cloud.client(h.uuid) as c:
            assert c.version()["agent_version"] == "4.0.0"


def test_a_tampered_package_in_the_repo_is_never_installed(mn_cloud, mn_repo):
    cloud = mn_cloud(hosts=2, vms=2, agent_version="4.0.0", storage_agent=False)
    repo_root = mn_repo("4.3.12", ("c74",))
    package = next(Path(repo_root).rglob("skylift-agent*"))
    package.write_bytes(package.read_bytes() + b"tampered")

    async def main():
        cm = ConnectionManager(cloud.engine, ConnectOptions(
            agent_port=cloud.port, jitter=0, ping_interval=NO_PINGS),
            repo_root=repo_root, node_ops=NodeOps(node_root_for=cloud.node_roots()))
        await cm.start()
        try:
            reasons = {i["reason"] for i in cm.pending()["pending"]}
            assert reasons == {"package-digest-mismatch"}
        finally:
            await cm.stop()

    asyncio.run(main())
    for h in cloud.hosts:
        with cloud.client(h.uuid) as c:
            assert c.version()["agent_version"] == "4.0.0"


class CrashingRestart(NodeOps):
    """The agent installs, then crashes on its restart (it is stopped and does not start)."""

    async def restart_agent(self, res) -> None:
        handle = find_agent(Path(self.node_root(res)))
        await asyncio.to_thread(stop_agent, handle)


def test_an_agent_that_does_not_come_back_after_its_upgrade_is_named(mn_cloud, mn_repo):
    cloud = mn_cloud(hosts=1, vms=1, agent_version="4.0.0", storage_agent=False)
    repo_root = mn_repo("4.3.12", ("c74",))
    host = cloud.hosts[0]

    async def main():
        cm = ConnectionManager(cloud.engine, ConnectOptions(
            agent_port=cloud.port, jitter=0, ping_interval=NO_PINGS, restart_timeout=2.0,
            converge_window=0.1),
            repo_root=repo_root, node_ops=CrashingRestart(node_root_for=cloud.node_roots()))
        await cm.start()
        try:
            item = pending_of(cm)[host.uuid]
            assert item["reason"] == "agent-did-not-return"
            assert "agent.log" in item["remedy"]
        finally:
            await cm.stop()

    asyncio.run(main())
