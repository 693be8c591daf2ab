"""A lab installation: a running cloud of any release, built on demand.

    up(LabSpec(name, release, hosts, vms, ...))  -> state dict (also in lab.json)
    status(name)                                  -> release now, MN, agents up by kind, VMs
    down(name)                                    -> stops all it started; idempotent
    (status: lab_status.py, down: teardown.py; both importable from here)

up seeds a database at the release's revision, gives every agent-backed resource (hosts,
vRouters, storages with an agent of their own) a loopback address where the MN looks for its
agent, gives each a node root whose package database reports the release's versions, starts
real agents (one process each, or the host farm), starts the inventory's Running VMs on their
hosts' hypervisors and finally the MN (in maintenance mode on its own when the release is
older than the code: that is how an old release's MN looks). With --nodes ns the hosts are
network namespaces with OpenSSH, the MN is installed by `skylift install` and every host added
by `skylift host add` over SSH (ns_cloud.py).
"""

from __future__ import annotations

import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from skylift.agent.client import AgentClient
from skylift.agent.hypervisor.simaddr import use_shared_daemon
from skylift.agent.node import init_node
from skylift.agent.launch import start_agent
from skylift.db.engine import Database, drop_database
from skylift.errors import Refused, UsageError
from skylift.lab.addresses import loopback_addresses
from skylift.lab.errors import LabError
from skylift.lab.farm import start_farm
from skylift.lab import ha_lab, mn_machine, ns_cloud
from skylift.lab.artefacts import install_release_repo
from skylift.lab.farm_hosts import host_packages
from skylift.lab.seed import seed
from skylift.lab.state import block_of, lab_dir, lab_trust, read_state, write_state  # noqa: F401 (lab_trust: callers find it here)
from skylift.lineage import release as get_release
from skylift.lineage import ships_agent_tls
from skylift.mn.launch import mn_client
from skylift.pki.trust import AgentTrust

FARM_THRESHOLD = 50  # above this many nodes, one farm process serves them
NODE_KINDS = ("loopback", "ns")


@dataclass
class LabSpec:
    """What `skylift lab up` builds."""

    name: str = "default"
    release: str = "3.7.1"
    hosts: int = 3
    vms: int = 6
    db_url: str | None = None  # default: a SQLite file in the lab folder
    db_password: str | None = None
    driver: str = "process"
    farm: bool | None = None  # None: a farm when there are more than FARM_THRESHOLD nodes
    os_release: str = "c74"
    agent_port: int = 7070  # 0: a port free on every lab address
    mn_port: int = 0
    nodes: str = "loopback"  # "ns": hosts are network namespaces with sshd (lab/ns_cloud.py)
    mns: int = 1  # above 1: an HA cloud, MNs in namespaces on Galera behind a VIP (ha_lab.py)


def _free_port_everywhere(addresses: list[str]) -> int:
    for _ in range(50):
        with socket.socket() as probe_sock:
            probe_sock.bind(("127.0.0.1", 0))
            port = probe_sock.getsockname()[1]
        try:
            for addr in addresses[:200]:
                with socket.socket() as s:
                    s.bind((addr, port))
            return port
        except OSError:
            continue
    raise LabError("no TCP port is free on every lab address", next="stop other labs")


# Storages with an agent of their own, and the URL scheme naming it. LocalStorage and
# SharedBlock are served by the agents of the hosts that use them, as in the product modelled.
STORAGE_AGENTS = {("primary_storages", "Ceph"): "ceph", ("backup_storages", "Ceph"): "ceph",
                  ("backup_storages", "ImageStoreBackupStorage"): "imagestore"}
STORAGE_KIND = {"primary_storages": "primary-storage", "backup_storages": "backup-storage"}


def _nodes(db: Database, first) -> tuple[list[dict], list[dict]]:
    """Every agent-backed resource of the inventory (hosts, vRouters, storages with an agent
    of their own), each given an address from first on (a function of their count: where
    the range starts) written back where the MN looks for it: management_ip, or the host
    part of a storage's URL."""
    eng = db.engine()
    try:
        with eng.begin() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            vr_table = "vpc_vrouters" if "vpc_vrouters" in tables else "virtual_routers"
            rows = [("host", "hosts", r) for r in conn.execute(
                sa.text("SELECT uuid, name FROM hosts ORDER BY name"))]
            if vr_table in tables:
                rows += [("vrouter", vr_table, r) for r in conn.execute(
                    sa.text(f"SELECT uuid, name FROM {vr_table} ORDER BY name"))]
            for table in ("primary_storages", "backup_storages"):
                rows += [(STORAGE_KIND[table], table, r) for r in conn.execute(
                    sa.text(f"SELECT uuid, name, type, url FROM {table} ORDER BY name"))
                    if (table, r.type) in STORAGE_AGENTS]
            addresses = loopback_addresses(len(rows), first(len(rows)))
            nodes = []
            for (kind, table, r), addr in zip(rows, addresses):
                if table in STORAGE_KIND:
                    scheme = STORAGE_AGENTS[(table, r.type)]
                    conn.execute(sa.text(f"UPDATE {table} SET url = :url WHERE uuid = :u"),
                                 {"url": f"{scheme}://{addr}{urlsplit(r.url).path}",
                                  "u": r.uuid})
                else:
                    conn.execute(sa.text(f"UPDATE {table} SET management_ip = :ip "
                                         "WHERE uuid = :u"), {"ip": addr, "u": r.uuid})
                nodes.append({"kind": kind, "uuid": r.uuid, "name": r.name, "address": addr})
            vms = [dict(r._mapping) for r in conn.execute(sa.text(
                "SELECT uuid, name, host_uuid, ha_level FROM vm_instances "
                "WHERE state = 'Running' AND host_uuid IS NOT NULL ORDER BY name"))]
    finally:
        eng.dispose()
    return nodes, vms


def up(spec: LabSpec, on_step=None) -> dict:
    """Build and start lab installation spec.name; returns its state (see lab.json)."""
    step = on_step or (lambda msg: None)
    rel = get_release(spec.release)
    if spec.nodes not in NODE_KINDS:
        raise UsageError(f"--nodes {spec.nodes!r} is not a kind of lab node",
                         next=f"give one of: {', '.join(NODE_KINDS)}")
    ha_lab.check_mns(spec.mns)
    if spec.mns > 1 and spec.nodes == "ns":
        raise UsageError("an HA lab's hosts are not namespace nodes",
                         why="its MN nodes are the namespaces; hosts are this machine's agents "
                             "(or the farm) on a range every MN node reaches",
                         next="drop --nodes ns, or --mns")
    if spec.mns > 1 and spec.db_url:
        raise UsageError("an HA lab makes its own database",
                         why="its database is a Galera cluster on its MN nodes",
                         next="drop --db")
    if spec.nodes == "ns" and spec.farm:
        raise UsageError("namespace nodes and the host farm do not go together",
                         why="the farm serves thousands of hosts from one process; namespace "
                             "nodes are real nodes, one each",
                         next="drop --farm, or --nodes ns")
    home = lab_dir(spec.name)
    old = read_state(spec.name)
    if old and anything_alive(old):
        raise Refused(f"lab '{spec.name}' is up", why=f"its processes still run ({home})",
                      next=f"run `skylift lab down --name {spec.name}` first")
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    for sub in ("nodes", "farm", "sim", "mn-home", "ns", "galera",
                *(f"mn-{i}-home" for i in range(2, 6))):  # a previous lab of this name: afresh
        shutil.rmtree(home / sub, ignore_errors=True)
    # the cloud's CA, as installing the MN makes it: it deploys this release's agents with
    # certificates (agents of a release before TLS get theirs from the upgrade)
    (home / "mn-home").mkdir(mode=0o700)
    trust = AgentTrust.of_home(home / "mn-home")
    deploy_tls = trust if ships_agent_tls(rel.version) else None
    ha = spec.mns > 1
    own_db = spec.db_url is None and not ha
    db = Database.from_string(spec.db_url or f"sqlite:///{home / 'cloud.db'}", spec.db_password)
    if own_db:
        drop_database(db)
    state = {"name": spec.name, "release": rel.version, "spec": asdict(spec) | {"db_password": None},
             "dir": str(home), "db_url": db.display(), "own_db": own_db, "nodes": [],
             "vms": [], "farm": None, "mn": None, "created_at": time.time()}
    write_state(spec.name, state)
    try:
        if ha:
            db = ha_lab.make_mn_nodes(spec, state, step)
            state["db_url"] = db.display()
        step(f"seeding a {rel.version} inventory: {spec.hosts} hosts, {spec.vms} VMs")
        seed(db, rel.version, spec.hosts, spec.vms, os_release=spec.os_release)
        nodes, vms = _nodes(db, (lambda count: ha_lab.host_addresses(state, count)) if ha
                            else (lambda count: f"127.{block_of(spec.name)}.0.1"))
        ns = spec.nodes == "ns"
        use_farm = not ns and (spec.farm if spec.farm is not None
                               else len(nodes) > FARM_THRESHOLD)
        local = [n for n in nodes if not (ns and n["kind"] == "host")]
        port = spec.agent_port or _free_port_everywhere([n["address"] for n in local])
        state.update(nodes=nodes, agent_port=port, driver="sim" if use_farm else spec.driver)
        if ns:
            state["ns"] = ns_cloud.make_nodes(spec.name, [n for n in nodes if n not in local],
                                              rel.version, spec.os_release, step)
            _readdress_hosts(db, [n for n in nodes if n not in local])
        _record_agent_port(db, port)
        write_state(spec.name, state)
        step(f"starting {len(local)} agents" + (" (host farm)" if use_farm else ""))
        if use_farm:
            _start_farm(spec, state, nodes, port, deploy_tls)
        else:
            _start_agents(spec, state, local, port, deploy_tls)
        write_state(spec.name, state)
        if ns:  # the MN first: hosts install their agent from its repository
            state["mn"] = _install_mn(spec, db, home, port, state, step)
            write_state(spec.name, state)
            ns_cloud.add_hosts(state, home / "mn-home", spec.driver, step)
            write_state(spec.name, state)
        step(f"starting {len(vms)} running VMs")
        state["vms"] = _start_vms(state, vms, trust)
        write_state(spec.name, state)
        if ha:
            state["mn"] = ha_lab.start_mns(spec, state, port, step)
        elif not ns:
            step("starting the management node")
            state["mn"] = _start_mn(spec, db, home, port, state)
        write_state(spec.name, state)
    except BaseException:
        write_state(spec.name, state)
        down(spec.name)
        raise
    return state


def _readdress_hosts(db: Database, hosts: list[dict]) -> None:
    """Hosts on namespace nodes: their management IP is the node's address."""
    eng = db.engine()
    try:
        with eng.begin() as conn:
            for n in hosts:
                conn.execute(sa.text("UPDATE hosts SET management_ip = :ip WHERE uuid = :u"),
                             {"ip": n["address"], "u": n["uuid"]})
    finally:
        eng.dispose()


def _record_agent_port(db: Database, port: int) -> None:
    """The agent port is the cloud's setting (host.agentPort): every MN, including the one an
    upgrade starts, reads it there."""
    eng = db.engine()
    try:
        with eng.begin() as conn:
            conn.execute(sa.text("DELETE FROM global_settings WHERE category = 'host' "
                                 "AND name = 'agentPort'"))
            conn.execute(sa.text(
                "INSERT INTO global_settings (category, name, value, default_value, description) "
                "VALUES ('host', 'agentPort', :p, '7070', 'TCP port of the agents')"),
                {"p": str(port)})
    finally:
        eng.dispose()


def _start_farm(spec: LabSpec, state: dict, nodes: list[dict], port: int,
                tls: AgentTrust | None) -> None:
    handle = start_farm(len(nodes), base_dir=lab_dir(spec.name) / "farm", agent_port=port,
                        ssh_port=0, release=spec.release, os_release=spec.os_release,
                        first_address=nodes[0]["address"], uuids=[n["uuid"] for n in nodes],
                        roles=[n["kind"] for n in nodes],
                        sim_root=lab_dir(spec.name) / "sim",
                        pki_dir=tls.ca.folder if tls else None)
    state["farm"] = handle.to_dict()
    for n in nodes:
        n["node_root"] = str(handle.node_root(n["address"]))
        n["url"] = handle.url(n["address"])


def _start_agents(spec: LabSpec, state: dict, nodes: list[dict], port: int,
                  tls: AgentTrust | None) -> None:
    packages = host_packages(spec.release, spec.os_release)
    sim_root = lab_dir(spec.name) / "sim"
    for n in nodes:
        # names are unique per table only (a Ceph primary and backup storage may share one)
        root = lab_dir(spec.name) / "nodes" / (n["name"] if n["kind"] == "host"
                                               else f"{n['kind']}-{n['name']}")
        init_node(root, n["kind"], spec.os_release, packages, uuid=n["uuid"])
        if spec.driver == "sim":
            use_shared_daemon(root, sim_root)  # one hypervisor process for the whole lab
        n["node_root"] = str(root)
        n["url"] = f"http://{n['address']}:{port}"
        if tls is not None:
            tls.issue(n["address"], root)
    with ThreadPoolExecutor(8) as pool:  # an agent takes about a second to start
        handles = list(pool.map(
            lambda n: start_agent(Path(n["node_root"]), n["kind"], host=n["address"], port=port,
                                  driver=spec.driver, os_release=spec.os_release,
                                  trust=tls), nodes))
    for n, h in zip(nodes, handles):
        n["pid"] = h.pid


def _start_vms(state: dict, vms: list[dict], trust: AgentTrust) -> list[dict]:
    url_of = {n["uuid"]: n["url"] for n in state["nodes"]}

    def start(vm: dict) -> dict:
        with AgentClient(url_of[vm["host_uuid"]], timeout=30.0, trust=trust) as c:
            got = c.create_vm(vm["uuid"], vm["name"], ha=vm["ha_level"] == "NeverStop")
        return {"uuid": vm["uuid"], "name": vm["name"], "host_uuid": vm["host_uuid"],
                "endpoint": got["endpoint"], "boot_id": got["boot_id"]}

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(start, vms))


def _install_mn(spec: LabSpec, db: Database, home: Path, agent_port: int, state: dict,
                step) -> dict:
    """The MN of a namespace lab: installed by `skylift install`, on the lab's bridge."""
    mn_home = home / "mn-home"
    local = [n for n in state["nodes"] if not n.get("netns")]
    mn_machine.prepare(mn_home, os_release=spec.os_release, nodes=local, farm=None,
                       known_hosts=Path(state["ns"]["known_hosts"]))
    port = spec.mn_port or _free_port_everywhere([state["ns"]["gateway"]])
    done = ns_cloud.install_mn(spec, state, db, mn_home, port, agent_port, step)
    with mn_client(done["mn_url"], None, 10.0, home=mn_home) as client:
        version = client.get("/v1/version").json()
    return {"pid": done["started"]["pid"], "url": done["mn_url"], "mode": version["mode"],
            "release": version["release"], "home": str(mn_home),
            "token_file": done["token_file"], "log": done["started"]["log"]}


def _start_mn(spec: LabSpec, db: Database, home: Path, agent_port: int, state: dict) -> dict:
    from skylift.mn.launch import start_mn

    mn_home = home / "mn-home"
    mn_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    node_root = mn_machine.prepare(mn_home, os_release=spec.os_release, nodes=state["nodes"],
                                   farm=state["farm"])
    install_release_repo(mn_home, node_root, spec.release, spec.os_release)
    port = spec.mn_port or _free_port_everywhere(["127.0.0.1"])
    url = db.url.render_as_string(hide_password=False)
    handle = start_mn(url, port=port, agent_port=agent_port, env={"SKYLIFT_HOME": str(mn_home)},
                      timeout=60.0, node_root=node_root)
    mn_machine.write_config(mn_home, db_url=db.url_without_password(), mn_url=handle.url,
                            node_root=node_root)
    from skylift.mn.auth import token_path

    return {"pid": handle.pid, "url": handle.url, "mode": handle.mode,
            "release": handle.release, "home": str(mn_home),
            "token_file": str(token_path(mn_home)), "log": str(handle.log_path)}


# the lab's other commands, where callers have always found them
from skylift.lab.lab_status import status  # noqa: E402,F401
from skylift.lab.teardown import anything_alive, down  # noqa: E402,F401
