"""The real-node path end to end: a 3.7.1 cloud whose hosts are network namespaces with
OpenSSH, its MN installed by `skylift install`, its hosts added by `skylift host add` over
SSH, upgraded to 4.3.12 by the one command; the agents' code changes on every node (digest),
every VM keeps its boot id."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from skylift.agent.client import AgentClient
from skylift.agent.hypervisor import probe
from skylift.lab.installation import down, lab_trust
from skylift.lineage import NEWEST
from skylift.mn.agent_upgrade import AGENT, RepoCatalog
from skylift.upgrade import single_mn
from upgrade_world import World

pytestmark = pytest.mark.slow


def code_of(world: World) -> dict[str, dict]:
    """Each host agent's version document, read as the MN reads it (mutual TLS once pinned)."""
    trust = lab_trust(world.state)
    out = {}
    for n in world.state["nodes"]:
        if n.get("netns"):
            with AgentClient(n["url"], timeout=10, trust=trust) as agent:
                out[n["name"]] = agent.version()
    return out


def package_digest(world: World, version: str) -> str:
    index = RepoCatalog(world.mn_home / "node").index("c74")
    return index.find(AGENT, version).code_digest


@pytest.fixture
def world():
    w = World("nsup", release="3.7.1", hosts=3, vms=3, nodes="ns")
    yield w
    down("nsup")


def test_a_371_cloud_of_namespace_hosts_upgrades_onto_new_agent_code(world):
    hosts = [n for n in world.state["nodes"] if n.get("netns")]
    assert len(hosts) == 3
    assert all(n["address"].startswith("198.18.") for n in hosts)
    installed = json.loads((world.mn_home / "install.json").read_text())
    assert installed["release"] == "3.7.1"
    before = code_of(world)
    old_digest = package_digest(world, "3.7.1")
    assert {v["agent_version"] for v in before.values()} == {"3.7.1"}
    assert {v["code"]["source"] for v in before.values()} == {"package"}
    assert {v["code"]["digest"] for v in before.values()} == {old_digest}

    out = world.skylift(*world.upgrade_argv())
    assert out.returncode == 0, out.stdout + out.stderr

    after = code_of(world)
    new_digest = package_digest(world, NEWEST.version)
    assert new_digest != old_digest
    assert {v["agent_version"] for v in after.values()} == {NEWEST.version}
    assert {v["code"]["digest"] for v in after.values()} == {new_digest}
    # the code lives in a versioned place beside the previous one, to switch back to
    for n in hosts:
        agent = Path(n["node_root"]) / "agent"
        assert (agent / "current").resolve().name == NEWEST.version
        assert (agent / "previous").resolve().name == "3.7.1"
        assert (agent / "deps-current").resolve().name == NEWEST.version
    assert all(probe(ep) == boot for ep, boot in world.vms.values())
    proof = json.loads((single_mn.run_dir(world.mn_home) / "state.json").read_text())["proof"]
    assert proof["ok"] and proof["agents_on_package_code"] == 3
    assert proof["package_code_digest"] == new_digest

    # the previous version is kept to switch back to: on the node, as an operator would
    first = hosts[0]
    run = f"{first['node_root']}/agent/run"
    for argv in ([run, "-m", "skylift.agent.packages", "--node-root", first["node_root"],
                  "switch-back"],
                 [run, "-m", "skylift.agent.service", "--node-root", first["node_root"],
                  "restart"]):
        done = subprocess.run(["ip", "netns", "exec", first["netns"], *argv],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    back = code_of(world)[first["name"]]
    assert (back["agent_version"], back["code"]["digest"]) == ("3.7.1", old_digest)
    assert all(probe(ep) == boot for ep, boot in world.vms.values())


def test_lab_down_removes_every_namespace_and_process():
    w = World("nsdown", release="4.3.12", hosts=1, vms=1, nodes="ns")
    netns = [n["netns"] for n in w.state["nodes"] if n.get("netns")]
    down("nsdown")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in netns)
    assert not any(Path("/etc/netns", ns).exists() for ns in netns)
