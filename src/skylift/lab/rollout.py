"""A farm as a cloud for the connection manager: inventory pointed at the farm, the MN's repo,
and a reconnect storm that upgrades every farm host's agent over SSH.

Shared by the lab tests and bench/reconnect.py, so both measure the same thing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa

from skylift.db.engine import Database
from skylift.errors import AgentError
from skylift.lab.farm import FarmHandle
from skylift.lab.seed import seed
from skylift.release.agent_code import agent_package_bytes, code_digest_of_package
from skylift.release.build import os_image_content
from skylift.release.manifest import PackageEntry, RepoIndex
from skylift.release.packages import AGENT_PACKAGE

# where the MN believes a node's root is; a farm host maps it to its own (see farm_ssh.py)
NODE_ROOT = "/var/lib/skylift/node"


def seed_for_farm(db: Database, hosts: int, *, release: str = "4.3.12",
                  agent_version: str = "3.7.1") -> list[tuple[str, str]]:
    """Seed hosts at release (no VMs) with agents reported at agent_version.

    Returns (uuid, role) of every agent-backed node (hosts, then VPC vRouters), the order in
    which farm addresses are given out by point_at_farm.
    """
    seed(db, release, hosts, 0)
    eng = db.engine()
    try:
        with eng.begin() as conn:
            conn.execute(sa.text("UPDATE hosts SET agent_version = :v"), {"v": agent_version})
            nodes = [(r.uuid, "host") for r in conn.execute(
                sa.text("SELECT uuid FROM hosts ORDER BY name"))]
            nodes += [(r.uuid, "vrouter") for r in conn.execute(
                sa.text("SELECT uuid FROM vpc_vrouters ORDER BY name"))]
    finally:
        eng.dispose()
    return nodes


def point_at_farm(db: Database, farm: FarmHandle, nodes: list[tuple[str, str]]) -> None:
    """Set every node's management IP to its farm address."""
    eng = db.engine()
    try:
        with eng.begin() as conn:
            for (uuid, role), addr in zip(nodes, farm.addresses):
                table = "hosts" if role == "host" else "vpc_vrouters"
                conn.execute(sa.text(f"UPDATE {table} SET management_ip = :ip WHERE uuid = :u"),
                             {"ip": addr, "u": uuid})
    finally:
        eng.dispose()


def write_mn_repo(node_root: Path, version: str = "4.3.12",
                  oses: tuple[str, ...] = ("c74",), agent_build: str | None = None) -> Path:
    """The MN's local repo (as skylift.repo.local lays it out) from the release's OS image;
    given agent_build, it carries that skylift-agent build too (a hotfix of the release)."""
    for os_release in oses:
        _, files = os_image_content(version, os_release)
        if agent_build:
            files = with_agent_build(files, agent_build)
        entry = node_root / "repo" / os_release / "store" / f"{version}-lab"
        for name, data in files:
            (entry / name).parent.mkdir(parents=True, exist_ok=True)
            (entry / name).write_bytes(data)
        (entry / "REPO.json").write_text(json.dumps(
            {"release": version, "os": os_release, "repo_version": version}))
        (node_root / "repo" / os_release / "state.json").write_text(
            json.dumps({"current": entry.name, "previous": None}))
    return node_root


def with_agent_build(files: list[tuple[str, bytes]], build: str) -> list[tuple[str, bytes]]:
    """An OS image's files plus the skylift-agent package of `build`, in its index."""
    data = agent_package_bytes(build)
    name = f"{AGENT_PACKAGE}-{build}.pkg"
    index = RepoIndex.model_validate_json(dict(files)["repodata/index.json"])
    index.packages.append(PackageEntry(name=AGENT_PACKAGE, version=build, file=name,
                                       sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                       code_digest=code_digest_of_package(data)))
    rest = [(n, d) for n, d in files if n != "repodata/index.json"]
    return [("repodata/index.json", index.model_dump_json(exclude_none=True).encode()),
            *rest, (f"packages/{name}", data)]


async def reconnect_farm(db: Database, farm: FarmHandle, repo_root: Path, *,
                         max_concurrency: int = 200, ssh_concurrency: int = 200,
                         trust=None, over_ssh: bool = True):
    """One reconnect storm of the ConnectionManager over the farm, upgrading agents over SSH
    (and, given the cloud's trust, bringing each onto TLS). Without over_ssh the MN has no
    transport to any node: only agents that upgrade themselves can be upgraded.

    Returns (ReconnectReport, versions): versions maps address -> agent_version reported now.
    """
    from skylift.mn.agent_upgrade import NodeOps
    from skylift.mn.connections import ConnectionManager, ConnectOptions
    from skylift.transport.ssh import SshPool, SshTarget

    # strict: the farm wrote its host key for every address in its known_hosts
    # (farm_ssh.write_known_hosts), so no farm node is ever trusted on first use
    pool = SshPool(known_hosts=farm.known_hosts, max_concurrency=ssh_concurrency,
                   share_loop=True, host_key_policy="strict")

    def transport_for(res):
        if not over_ssh:
            raise AgentError(f"no SSH to {res.kind} {res.name} in this storm",
                             next="upgrade only agents that upgrade themselves")
        return pool.transport(SshTarget(res.address, farm.ssh_port, "root",
                                        key_path=farm.client_key))

    eng = db.engine()
    options = ConnectOptions(agent_port=farm.agent_port, max_concurrency=max_concurrency,
                             update_packages=False, ping_interval=3600)
    cm = ConnectionManager(eng, options, repo_root=repo_root,
                           node_ops=NodeOps(transport_for=transport_for,
                                            node_root_for=lambda res: NODE_ROOT),
                           trust=trust)
    try:
        report = await cm.reconnect_all()
    finally:
        await cm.stop()
        await pool.aclose()
        eng.dispose()
    return report
