"""The host farm, for real: one process, 1,000 hosts on loopback addresses, agent and SSH
endpoints, agent restarts that keep VMs, and a reconnect storm that upgrades every agent."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest

from skylift.agent.hypervisor import probe
from skylift.db.engine import Database
from skylift.lab.farm import find_farm, start_farm, stop_farm
from skylift.lab.rollout import point_at_farm, reconnect_farm, seed_for_farm, write_mn_repo
from skylift.mn import agent_upgrade
from skylift.mn.agent_pool import AgentPool
from skylift.mn.agent_upgrade import wait_for_version
from skylift.pki.trust import AgentTrust
from skylift.transport.ssh import SshPool, SshTarget

VM_A, VM_X = f"{0xa:032x}", f"{0xb:032x}"  # VM uuids are 32 hex digits (uuid4().hex)


@pytest.fixture
def farm_factory(tmp_path):
    made = []

    def _make(n: int, **kw):
        farm = start_farm(n, base_dir=tmp_path / f"farm{len(made)}", agent_port=0, ssh_port=0,
                          first_address=kw.pop("first_address", "127.61.0.1"), **kw)
        made.append(farm)
        return farm

    yield _make
    for farm in made:
        stop_farm(farm)
        assert not farm.alive()


async def _versions(farm, addresses) -> list[dict]:
    sem = asyncio.Semaphore(100)
    async with httpx.AsyncClient(timeout=30.0) as http:
        async def one(addr):
            async with sem:
                return (await http.get(farm.url(addr) + "/v1/version")).json()
        return await asyncio.gather(*(one(a) for a in addresses))


def test_farm_of_1000_hosts_answers_on_every_address(farm_factory):
    farm = farm_factory(1000, release="3.7.1")
    assert len(set(farm.addresses)) == 1000
    assert "127.0.0.1" not in farm.addresses
    assert all(a.rsplit(".", 1)[1] not in ("0", "255") for a in farm.addresses)
    replies = asyncio.run(_versions(farm, farm.addresses))
    assert {r["agent_version"] for r in replies} == {"3.7.1"}
    assert {(r["qemu"], r["libvirt"], r["os_release"]) for r in replies} == {("2.9.0", "3.9.0", "c74")}
    assert len({r["uuid"] for r in replies}) == 1000  # 1,000 distinct hosts
    # nothing answers on an address that is not a farm host
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{farm.agent_port}/v1/health", timeout=3.0)
    assert farm.rss_bytes() < 1 << 30
    assert find_farm(farm.base_dir).pid == farm.pid


def test_ssh_upgrade_and_restart_keep_vms(farm_factory):
    farm = farm_factory(20, release="3.7.1", first_address="127.62.0.1")
    a, other = farm.addresses[3], farm.addresses[4]
    with httpx.Client(timeout=10.0) as http:
        vm = http.post(farm.url(a) + "/v1/vms", json={"uuid": VM_A, "name": "a"}).json()
        boot_before = http.get(farm.url(a) + "/v1/boot-id").json()["agent_boot_id"]
        pool = SshPool(known_hosts=farm.known_hosts)
        try:
            node = pool.transport(SshTarget(a, farm.ssh_port, "root", key_path=farm.client_key))
            out = node.run(["python3", "-m", "skylift.agent.packages", "--node-root",
                            "/var/lib/skylift/node", "install", "skylift-agent", "4.3.12"])
            assert out.ok and '"previous": "3.7.1"' in out.stdout
            # installed, not yet running: the agent reports the new version after a restart
            assert http.get(farm.url(a) + "/v1/version").json()["agent_version"] == "3.7.1"
            assert node.run(["systemctl", "restart", "skylift-agent"]).ok
            assert node.run(["rm", "-rf", "/"]).exit_status == 127  # no shell on a farm host
        finally:
            pool.close()
        after = http.get(farm.url(a) + "/v1/version").json()
        assert (after["agent_version"], after["installed_agent_version"]) == ("4.3.12", "4.3.12")
        assert http.get(farm.url(a) + "/v1/boot-id").json()["agent_boot_id"] != boot_before
        assert http.get(farm.url(other) + "/v1/version").json()["agent_version"] == "3.7.1"
        listed = http.get(farm.url(a) + "/v1/vms").json()
    assert [v["boot_id"] for v in listed] == [vm["boot_id"]]  # the VM never noticed
    assert probe(vm["endpoint"]) == vm["boot_id"]
    # the known_hosts file pins the farm host key for every address
    assert sum(1 for _ in open(farm.known_hosts)) == 20


def test_vms_outlive_the_farm(farm_factory, tmp_path):
    farm = farm_factory(3, release="4.3.12", first_address="127.63.0.1")
    vm = httpx.post(farm.url(farm.addresses[0]) + "/v1/vms",
                    json={"uuid": VM_X, "name": "x"}, timeout=10).json()
    stop_farm(farm, keep_vms=True)
    assert probe(vm["endpoint"]) == vm["boot_id"]  # the hypervisor is not the farm


async def _tls_versions(farm, addresses, trust) -> list[str]:
    """Every agent's version, read as the MN reads them (its sharded pools, its trust)."""
    pool = AgentPool(max_concurrency=100, timeout=30.0, token=None, trust=trust)
    pool.open()
    sem = asyncio.Semaphore(100)

    async def one(addr):
        async with sem:
            agent = pool.client(addr, addr, lambda: farm.url(addr))
            return (await agent.version())["agent_version"]
    try:
        return await asyncio.gather(*(one(a) for a in addresses))
    finally:
        await pool.close()


def test_reconnect_of_1000_farm_hosts_upgrades_every_agent_onto_tls(farm_factory, tmp_path):
    db = Database.from_string(f"sqlite:///{tmp_path / 'cloud.db'}")
    trust = AgentTrust.of_home(tmp_path / "mn-home")
    nodes = seed_for_farm(db, 1000, agent_version="3.7.1")
    farm = farm_factory(len(nodes), release="3.7.1", first_address="127.64.0.1",
                        uuids=[u for u, _ in nodes], roles=[r for _, r in nodes])
    point_at_farm(db, farm, nodes)
    # agents of a release before TLS answer plain HTTP
    assert httpx.get(farm.url(farm.addresses[0]) + "/v1/health", timeout=5).status_code == 200
    report = asyncio.run(reconnect_farm(db, farm, write_mn_repo(tmp_path / "mn"), trust=trust))
    assert report.failures == {}
    assert report.connected == report.agents_upgraded == len(nodes) >= 1000
    # every one was given its certificate on the way, and pinned by its first TLS answer
    assert all(trust.pinned(a) for a in farm.addresses)
    replies = asyncio.run(_tls_versions(farm, farm.addresses, trust))
    assert replies == ["4.3.12"] * len(nodes)
    for addr in farm.addresses[:5]:  # and now obeys no one without the MN's certificate
        # a TLS server hangs up on plain HTTP: a close, or a reset when the request's body
        # was still unread (a race of the kernel's); the MN reads both as the wrong scheme
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            httpx.post(farm.url(addr) + "/v1/packages", timeout=5,
                       json={"name": "qemu-kvm", "version": "0.0.1-evil"})
    print(f"\nreconnect + upgrade of {len(nodes)} farm hosts: {report.seconds:.1f}s",
          file=sys.stderr)


def test_agents_that_upgrade_themselves_are_rolled_out_without_ssh(farm_factory, tmp_path,
                                                                    monkeypatch):
    db = Database.from_string(f"sqlite:///{tmp_path / 'cloud.db'}")
    trust = AgentTrust.of_home(tmp_path / "mn-home")
    nodes = seed_for_farm(db, 200, agent_version="4.3.12")
    # deployed at 4.3.12 with certificates: they take an upgrade order over mutual TLS
    farm = farm_factory(len(nodes), release="4.3.12", first_address="127.65.0.1",
                        uuids=[u for u, _ in nodes], roles=[r for _, r in nodes],
                        pki_dir=trust.ca.folder)
    point_at_farm(db, farm, nodes)
    before = asyncio.run(_boot_ids(farm, trust))
    repo = write_mn_repo(tmp_path / "mn", agent_build="4.3.12.1")
    waited = []  # agents the MN had to reach again after their restart

    async def restarted(client, want, timeout):
        waited.append(client.base_url)
        return await wait_for_version(client, want, timeout)

    monkeypatch.setattr(agent_upgrade, "wait_for_version", restarted)
    # no SSH to any node in this storm: an agent not upgrading itself would fail it
    report = asyncio.run(reconnect_farm(db, farm, repo, trust=trust, over_ssh=False))
    assert report.failures == {}
    # each handed its socket over and answered the order with its successor's version: the
    # MN connected once per agent (one TLS handshake), not again to a restarted one
    assert waited == []
    assert report.agent_connections == len(nodes)
    assert report.connected == report.agents_upgraded == len(nodes)
    assert asyncio.run(_tls_versions(farm, farm.addresses, trust)) == ["4.3.12.1"] * len(nodes)
    after = asyncio.run(_boot_ids(farm, trust))
    assert all(after[a] != before[a] for a in farm.addresses)  # each agent restarted


async def _boot_ids(farm, trust) -> dict[str, str]:
    pool = AgentPool(max_concurrency=100, timeout=30.0, token=None, trust=trust)
    pool.open()
    try:
        async def one(addr):
            return (await pool.client(addr, addr, lambda: farm.url(addr)).boot_id())
        docs = await asyncio.gather(*(one(a) for a in farm.addresses))
        return {a: d["agent_boot_id"] for a, d in zip(farm.addresses, docs)}
    finally:
        await pool.close()
