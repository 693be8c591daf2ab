"""An agent upgrading itself on the MN's order: a real node (bootstrapped from the MN's
HTTPS repository, run by its agent service, serving mutual TLS) takes one order, installs the
hotfix from its repository, answers, and restarts onto it; its VM keeps running. An order it
cannot take changes nothing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from skylift.agent import packages as pkgs
from skylift.agent.client import AsyncAgentClient
from skylift.agent.code_install import current_version
from skylift.agent.launch import free_port
from skylift.agent.service import ServiceSpec, configure, start, status, stop
from skylift.errors import PackageDigestMismatch, Refused
from skylift.lab.rollout import with_agent_build
from skylift.pki.trust import AgentTrust, install_node_tls
from skylift.processes import pid_alive
from skylift.release.agent_code import agent_package_bytes, code_digest_of_package
from skylift.release.build import os_image_content
from tests_support import bootstrap

HOTFIX = "4.3.12.1"


@pytest.fixture
def served_node(tmp_path, repo):
    """A node bootstrapped at 4.3.12 from the repository, its agent service started over
    mutual TLS; yields (node root, port, the MN's trust)."""
    url, ca_pem, _ = repo
    root = tmp_path / "node"
    done = bootstrap(root, url, ca_pem)
    assert done.returncode == 0, done.stderr
    trust = AgentTrust.of_home(tmp_path / "mn")
    install_node_tls(root, trust.issue("127.0.0.1"))
    port = free_port()
    configure(root, ServiceSpec("host", "127.0.0.1", port, "process", "c74"))
    start(root)
    yield root, port, trust
    stop(root, timeout=3)
    from skylift.agent.hypervisor import kill_node_vms

    kill_node_vms(root)


def publish_hotfix(tmp_path: Path) -> dict:
    """Add skylift-agent HOTFIX to the served repository; its index entry."""
    _, files = os_image_content("4.3.12", "c74")
    for name, data in with_agent_build(files, HOTFIX):
        (tmp_path / "repo" / "c74" / name).write_bytes(data)
    index = json.loads((tmp_path / "repo" / "c74" / "repodata" / "index.json").read_text())
    return next(p for p in index["packages"] if p["version"] == HOTFIX)


async def poll_versions(url: str, trust: AgentTrust, stop: asyncio.Event) -> list[tuple]:
    """GET /v1/version on a new connection each time until stop: when each client connected
    and what it was answered (a version, or the error it met)."""
    seen: list[tuple] = []
    async with httpx.AsyncClient(verify=trust.context, timeout=5.0, trust_env=False,
                                 limits=httpx.Limits(max_keepalive_connections=0)) as http:
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = (await http.get(url + "/v1/version")).json()["agent_version"]
            except httpx.HTTPError as exc:
                answer = type(exc).__name__
            seen.append((started, answer))
            await asyncio.sleep(0.005)
    return seen


def test_an_agent_upgrades_itself_on_one_order_and_its_vm_keeps_running(tmp_path,
                                                                         served_node):
    root, port, trust = served_node
    entry = publish_hotfix(tmp_path)
    url = f"https://127.0.0.1:{port}"

    async def scenario():
        async with AsyncAgentClient(url, trust=trust) as agent:
            before = await agent.version()
            assert (before["agent_version"], before["self_upgrade"]) == ("4.3.12", True)
            assert agent.schemes.over_tls()
            vm = await agent.create_vm(uuid.uuid4().hex, "keeps-running")
            first = status(root)
            # a digest that is not the MN's package: refused before anything is installed
            with pytest.raises(PackageDigestMismatch) as bad:
                await agent.upgrade_self(HOTFIX, "0" * 64)
            assert "MN's repository" in bad.value.why
            assert current_version(root) == "4.3.12" and status(root)["pid"] == first["pid"]
            stop = asyncio.Event()
            poller = asyncio.create_task(poll_versions(url, trust, stop))
            done = await agent.upgrade_self(HOTFIX, entry["sha256"])
            answered = time.monotonic()
            await asyncio.sleep(1.0)  # and a while after the old agent answered
            stop.set()
            return first, vm, done, answered, await poller, await agent.get_vm(vm["uuid"])

    first, vm, done, answered, seen, vm_after = asyncio.run(scenario())
    # the old agent answered with the new one's document: it serves already, no restart
    assert done["restarting"] is False and done["previous"] == "4.3.12"
    assert done["code"]["sha256"] == entry["sha256"]
    successor = done["successor"]
    assert successor["agent_version"] == HOTFIX
    assert successor["code"]["digest"] == code_digest_of_package(agent_package_bytes(HOTFIX))
    assert current_version(root) == HOTFIX
    assert pkgs.read_packages(root)["skylift-agent"] == HOTFIX
    now = status(root)
    assert now["running"] and now["pid"] == successor["pid"] != first["pid"]
    assert not pid_alive(first["pid"])  # the old agent ended once it had answered
    # every client that connected meanwhile was answered, never refused: the port did not
    # stop accepting; by the old agent or the new one while both served, and once the old
    # one had answered the order, only by the new one
    assert {answer for _, answer in seen} == {"4.3.12", HOTFIX}, seen
    assert {answer for at, answer in seen if at > answered} == {HOTFIX}, seen
    assert vm_after["boot_id"] == vm["boot_id"]  # the agent was replaced, the VM was not


def test_an_order_over_plain_http_is_refused_and_changes_nothing(make_node, agents):
    root = make_node(packages={"skylift-agent": "4.3.12"})
    agent = agents.start(root)  # no certificate: plain HTTP; no service to restart it

    async def scenario():
        async with AsyncAgentClient(f"http://127.0.0.1:{agent.port}") as client:
            assert (await client.version())["self_upgrade"] is False
            with pytest.raises(Refused) as refused:
                await client.upgrade_self(HOTFIX)
            return refused.value

    refused = asyncio.run(scenario())
    assert "mutual TLS" in refused.what and "SSH" in refused.next
    assert pkgs.read_packages(root)["skylift-agent"] == "4.3.12"
    assert agent.alive()
