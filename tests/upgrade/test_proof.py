"""The proof covers every agent of the cloud: hosts, primary and backup storages, vRouters."""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from skylift.agent.node import init_node
from skylift.agent.launch import start_agent, stop_agent
from skylift.db.engine import Database
from skylift.lab.farm_hosts import host_packages
from skylift.lab.seed import seed
from skylift.upgrade.cloud_view import AgentView, CloudView, read_cloud
from skylift.upgrade.facts import CloudFacts
from skylift.upgrade.proof import prove

TARGET = "4.3.12"


def view(*agents: AgentView) -> CloudView:
    return CloudView({a.uuid: a for a in agents})


def test_a_storage_agent_behind_fails_the_proof():
    after = view(AgentView("h1", "host-0", "", TARGET, kind="host"),
                 AgentView("ps1", "ceph-ps", "", "3.7.1", kind="primary-storage"),
                 AgentView("bs1", "imagestore-0", "", TARGET, kind="backup-storage"),
                 AgentView("vr1", "vr-0", "", error="ConnectError: refused", kind="vrouter"))
    proof = prove({}, {}, view(), after, TARGET)
    assert not proof.ok
    assert proof.agents_checked == 4
    assert proof.agents_by_kind == {"host": 1, "primary-storage": 1, "backup-storage": 1,
                                    "vrouter": 1}
    assert proof.agents_behind == ["primary-storage ceph-ps (3.7.1)"]
    assert proof.agents_unreachable == ["vrouter vr-0"]
    assert proof.to_dict()["agents_by_kind"]["primary-storage"] == 1
    assert len(proof.failures()) == 2


def test_resources_created_during_the_upgrade_are_named_and_a_resource_gone_fails():
    from skylift.db.inventory import digest_of

    before = {"zones": ["z1", "z2"], "hosts": ["h1", "h2"]}
    after = {"zones": ["z1", "z2", "z3"], "hosts": ["h1"]}
    digests = lambda keys: {k: digest_of(v) for k, v in keys.items()}  # noqa: E731
    proof = prove(digests(before), digests(after), view(), view(), TARGET,
                  before_keys=before, after_keys=after)
    assert proof.inventory_added == {"zones": 1}
    assert proof.inventory_changed == ["hosts"]
    assert not proof.ok
    # without the keys (a run recorded before they were kept) any difference fails
    assert prove(digests(before), digests(after), view(), view(),
                 TARGET).inventory_changed == ["hosts", "zones"]


def test_a_view_recorded_before_kinds_were_kept_reads_as_hosts():
    recorded = {"agents": {"h1": {"name": "host-0", "version": "3.7.1", "error": None,
                                  "vms": {}}}}
    assert CloudView.from_dict(recorded).agents["h1"].kind == "host"
    again = CloudView.from_dict(view(AgentView("b", "bs", "", TARGET,
                                               kind="backup-storage")).to_dict())
    assert again.agents["b"].kind == "backup-storage"


def _port_free_on(addresses: list[str]) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        try:
            for addr in addresses[1:]:
                with socket.socket() as s:
                    s.bind((addr, port))
            return port
        except OSError:
            continue
    pytest.fail("no port free on every test address")


@pytest.fixture
def cloud_371(tmp_path):
    """A 3.7.1 inventory whose host, vRouter and storages point at loopback agents."""
    db = Database.from_string(f"sqlite:///{tmp_path / 'cloud.db'}")
    seed(db, "3.7.1", 1, 0, os_release="c74")
    addr = {k: f"127.140.0.{i}" for i, k in enumerate(
        ("host", "vrouter", "ceph-ps", "imagestore-bs", "ceph-bs"), start=1)}
    port = _port_free_on(list(addr.values()))
    eng = db.engine()
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE hosts SET management_ip = :a"), {"a": addr["host"]})
        conn.execute(sa.text("UPDATE virtual_routers SET management_ip = :a"),
                     {"a": addr["vrouter"]})
        conn.execute(sa.text("UPDATE primary_storages SET url = 'ceph://' || :a || url "
                             "WHERE type = 'Ceph'"), {"a": addr["ceph-ps"]})
        conn.execute(sa.text("UPDATE backup_storages SET url = 'imagestore://' || :a || url "
                             "WHERE type = 'ImageStoreBackupStorage'"),
                     {"a": addr["imagestore-bs"]})
        conn.execute(sa.text("UPDATE backup_storages SET url = 'ceph://' || :a || url "
                             "WHERE type = 'Ceph'"), {"a": addr["ceph-bs"]})
        conn.execute(sa.text("INSERT INTO global_settings (category, name, value, "
                             "default_value, description) VALUES ('host', 'agentPort', :p, "
                             "'7070', 'agent port')"), {"p": str(port)})
    eng.dispose()
    yield db, addr, port


@pytest.fixture
def agents(tmp_path):
    """Start agents of a role with a release's packages (by key); all stopped at teardown."""
    handles = {}

    def start(key: str, role: str, release: str, address: str, port: int) -> None:
        root = tmp_path / key
        init_node(root, role, "c74", host_packages(release, "c74"))
        handles[key] = start_agent(root, role, host=address, port=port, driver="process",
                                   os_release="c74")

    yield handles, start
    for handle in handles.values():
        stop_agent(handle)


def test_read_cloud_asks_every_agent_backed_resource(cloud_371, agents):
    db, addr, port = cloud_371
    _, start = agents
    # the Ceph backup storage's agent is not started: it must be listed as unreachable
    for key, role, release in (("host", "host", TARGET), ("vrouter", "vrouter", TARGET),
                               ("ceph-ps", "primary-storage", "3.7.1"),
                               ("imagestore-bs", "backup-storage", TARGET)):
        start(key, role, release, addr[key], port)
    facts = CloudFacts(db)
    try:
        after = read_cloud(facts, concurrency=4)
        # agents expected at 4.3.12 are read in one request each (GET /v1/inventory); the
        # 3.7.1 one, which does not answer it, the old way: the same view either way
        one_each = read_cloud(facts, concurrency=4, expected=TARGET)
    finally:
        facts.close()
    assert one_each.to_dict() == after.to_dict()
    # LocalStorage and SharedBlock are served by the hosts' agents: no agent of their own
    assert after.counts() == {"host": 1, "vrouter": 1, "primary-storage": 1,
                              "backup-storage": 2}
    proof = prove({}, {}, view(), after, TARGET)
    assert proof.agents_checked == 5
    assert [b.split()[0] for b in proof.agents_behind] == ["primary-storage"]
    assert [u.split()[0] for u in proof.agents_unreachable] == ["backup-storage"]
    assert not proof.ok


def test_read_cloud_finds_the_vrouters_again_after_the_migration_renamed_their_table(cloud_371):
    from skylift.db.migrate import migrate

    db, addr, _ = cloud_371
    facts = CloudFacts(db)  # one CloudFacts lives through the whole upgrade run
    try:
        before = read_cloud(facts, concurrency=4)
        migrate(db)  # 4.0.0 turns virtual_routers into vpc_vrouters, same uuids
        after = read_cloud(facts, concurrency=4)
    finally:
        facts.close()
    vrouters = [u for u, a in before.agents.items() if a.kind == "vrouter"]
    assert len(vrouters) == 1
    assert [u for u, a in after.agents.items() if a.kind == "vrouter"] == vrouters
    assert after.counts() == before.counts()


def test_the_proof_waits_for_a_storage_agent_the_mn_is_still_upgrading(cloud_371, agents,
                                                                      tmp_path):
    import threading
    import time

    from skylift.agent import packages as pkgs
    from skylift.agent.launch import restart_agent
    from skylift.upgrade.cloud_view import read_settled

    db, addr, port = cloud_371
    handles, start = agents
    for key, role, release in (("host", "host", TARGET), ("vrouter", "vrouter", TARGET),
                               ("ceph-ps", "primary-storage", "3.7.1"),
                               ("imagestore-bs", "backup-storage", TARGET),
                               ("ceph-bs", "backup-storage", TARGET)):
        start(key, role, release, addr[key], port)

    def upgrade_storage_agent() -> None:  # what the MN does on reconnect: install, restart
        time.sleep(1.0)
        pkgs.install(tmp_path / "ceph-ps", pkgs.AGENT_PACKAGE, TARGET)
        handles["ceph-ps"] = restart_agent(handles["ceph-ps"])

    facts = CloudFacts(db)
    try:
        stuck = read_settled(facts, TARGET, timeout=0.3, interval=0.1)
        upgrader = threading.Thread(target=upgrade_storage_agent)
        upgrader.start()
        began = time.monotonic()
        settled = read_settled(facts, TARGET, timeout=30.0, interval=0.2)
        waited = time.monotonic() - began
        upgrader.join()
    finally:
        facts.close()
    assert [b.split()[0] for b in prove({}, {}, view(), stuck, TARGET).agents_behind] == \
        ["primary-storage"]
    proof = prove({}, {}, view(), settled, TARGET)
    assert proof.ok and proof.agents_checked == 5
    assert 1.0 < waited < 30.0
