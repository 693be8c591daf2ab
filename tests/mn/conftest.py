"""Fixtures for MN tests: a seeded cloud whose hosts, vRouters and a Ceph storage have real
agents on distinct loopback addresses (one port), sharing one sim hypervisor daemon; and the
MN's local repository. Every agent (also those the MN restarted) and the sim daemon are
stopped at teardown: no orphans.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from skylift.lab.rollout import write_mn_repo
from skylift.agent.client import AgentClient
from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.hypervisor.simaddr import use_shared_daemon
from skylift.agent.node import init_node
from skylift.agent.launch import AgentHandle, find_agent, free_port, start_agent, stop_agent
from skylift.db.engine import Database
from skylift.lab.seed import seed


@dataclass
class Node:
    """One agent-backed resource of the test cloud."""

    kind: str
    uuid: str
    name: str
    address: str
    root: Path
    cluster_uuid: str | None = None
    handle: AgentHandle | None = None


@dataclass
class TestCloud:
    db: Database
    engine: sa.Engine
    port: int
    nodes: list[Node]
    shared_root: Path
    vms: list[dict] = field(default_factory=list)  # vm_instances rows started on agents

    @property
    def hosts(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "host"]

    def node(self, uuid: str) -> Node:
        return next(n for n in self.nodes if n.uuid == uuid)

    def node_roots(self) -> dict[str, Path]:
        return {n.uuid: n.root for n in self.nodes}

    def client(self, uuid: str) -> AgentClient:
        return AgentClient(f"http://{self.node(uuid).address}:{self.port}")

    def running_on(self) -> dict[str, list[str]]:
        """vm uuid -> the hosts whose hypervisor runs it, asked of every host agent."""
        out: dict[str, list[str]] = {}
        for host in self.hosts:
            with self.client(host.uuid) as c:
                for vm in c.list_vms():
                    if vm["state"] == "Running":
                        out.setdefault(vm["uuid"], []).append(host.uuid)
        return out

    def set_setting(self, category: str, name: str, value: str) -> None:
        with self.engine.begin() as conn:
            t = sa.table("global_settings", sa.column("category"), sa.column("name"),
                         sa.column("value"), sa.column("default_value"))
            conn.execute(t.delete().where(t.c.category == category, t.c.name == name))
            conn.execute(t.insert().values(category=category, name=name, value=value,
                                           default_value=value))

    def rows(self, sql: str) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))


def write_repo(node_root: Path, version: str = "4.3.12", oses: tuple[str, ...] = ("c74",)) -> Path:
    """The MN's local repo from the release's OS image content (no signing: the repo tool's
    verification is tested in tests/repo)."""
    return write_mn_repo(node_root, version, oses)


def _free_everywhere(addresses: list[str]) -> int:
    import socket

    for _ in range(20):
        port = free_port("127.0.0.1")
        try:
            for addr in addresses:
                with socket.socket() as s:
                    s.bind((addr, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on every test address")


@pytest.fixture
def mn_cloud(make_db, tmp_path):
    """Factory: seed a 4.3.12 cloud, give every host, vRouter and one Ceph primary storage a
    real agent at 127.B.x.y, start the cloud's running VMs on their hosts' hypervisors."""
    made: list[TestCloud] = []

    def _make(hosts: int = 4, vms: int = 12, *, agent_version: str = "4.3.12",
              qemu: str = "2.12.0", libvirt: str = "4.9.0", os_release: str = "c74",
              start_vms: bool = True, storage_agent: bool = True,
              agent_version_of=None) -> TestCloud:
        db = make_db("sqlite")
        seed(db, "4.3.12", hosts=hosts, vms=vms, os_release=os_release)
        engine = db.engine()
        base = random.randint(100, 250)  # another test's agents may use other 127.x addresses
        nodes: list[Node] = []

        def version_of(n: Node) -> str:  # agent_version_of(node) gives some nodes another
            return (agent_version_of(n) if agent_version_of else None) or agent_version

        with engine.begin() as conn:
            for i, r in enumerate(conn.execute(sa.text(
                    "SELECT uuid, name, cluster_uuid FROM hosts ORDER BY name"))):
                nodes.append(Node("host", r.uuid, r.name, f"127.{base}.1.{i + 1}",
                                  tmp_path / "nodes" / r.name, r.cluster_uuid))
            for i, r in enumerate(conn.execute(sa.text(
                    "SELECT uuid, name, cluster_uuid FROM vpc_vrouters ORDER BY name"))):
                nodes.append(Node("vrouter", r.uuid, r.name, f"127.{base}.2.{i + 1}",
                                  tmp_path / "nodes" / r.name, r.cluster_uuid))
            if storage_agent:
                r = conn.execute(sa.text("SELECT uuid, name FROM primary_storages "
                                         "WHERE type = 'Ceph' ORDER BY name")).first()
                nodes.append(Node("primary-storage", r.uuid, r.name, f"127.{base}.3.1",
                                  tmp_path / "nodes" / r.name))
            for n in nodes:
                table = {"host": "hosts", "vrouter": "vpc_vrouters"}.get(n.kind)
                if table:
                    conn.execute(sa.text(f"UPDATE {table} SET management_ip = :ip, "
                                         "agent_version = :v WHERE uuid = :u"),
                                 {"ip": n.address, "v": version_of(n), "u": n.uuid})
                else:
                    conn.execute(sa.text("UPDATE primary_storages SET url = :url "
                                         "WHERE uuid = :u"),
                                 {"url": f"ceph://{n.address}/pool", "u": n.uuid})
            conn.execute(sa.text("UPDATE hosts SET qemu_version = :q, libvirt_version = :l"),
                         {"q": qemu, "l": libvirt})
        port = _free_everywhere([n.address for n in nodes])
        shared = tmp_path / "simd"
        cloud = TestCloud(db, engine, port, nodes, shared)
        made.append(cloud)
        roles = {"host": "host", "vrouter": "vrouter", "primary-storage": "primary-storage"}
        for n in nodes:
            init_node(n.root, roles[n.kind], os_release,
                      {"skylift-agent": version_of(n), "qemu-kvm": qemu, "libvirt": libvirt})
            use_shared_daemon(n.root, shared)
        with ThreadPoolExecutor(8) as pool:  # agents take ~1s each to start
            handles = pool.map(lambda n: start_agent(n.root, roles[n.kind], host=n.address,
                                                     port=port, os_release=os_release), nodes)
            for n, h in zip(nodes, handles):
                n.handle = h
        if start_vms:
            cloud.vms = [dict(r._mapping) for r in cloud.rows(
                "SELECT uuid, name, host_uuid, cluster_uuid, ha_level FROM vm_instances "
                "WHERE state = 'Running' AND host_uuid IS NOT NULL")]
            for vm in cloud.vms:
                with cloud.client(vm["host_uuid"]) as c:
                    c.create_vm(vm["uuid"], vm["name"], ha=vm["ha_level"] == "NeverStop")
        return cloud

    yield _make
    for cloud in made:
        for n in cloud.nodes:
            for handle in (n.handle, find_agent(n.root)):  # the MN may have restarted it
                if handle is not None:
                    stop_agent(handle, timeout=3.0)
            kill_node_vms(n.root)
        kill_node_vms(cloud.shared_root)
        cloud.engine.dispose()


@pytest.fixture
def mn_repo(tmp_path):
    """Factory: the MN's node root with a local repo of (version, OS releases)."""
    def _make(version: str = "4.3.12", oses: tuple[str, ...] = ("c74",)) -> Path:
        return write_repo(tmp_path / f"mn-node-{version}", version, oses)

    return _make
