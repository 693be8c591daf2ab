"""Fixtures for agent tests: node roots with a package database, and agents that are always
stopped afterwards together with every VM process and sim daemon they left (no orphans)."""

from __future__ import annotations

import pytest

from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.node import init_node
from skylift.agent.launch import start_agent, stop_agent

OLD_PACKAGES = {"skylift-agent": "4.0.0", "qemu-kvm": "2.12.0", "libvirt": "4.9.0"}


@pytest.fixture
def make_node(tmp_path):
    """Factory: a fresh node root (node.json + packages.json); its VMs are killed at teardown."""
    roots = []

    def _make(name: str = "host1", role: str = "host", os_release: str = "c74",
              packages: dict | None = None):
        root = tmp_path / name
        init_node(root, role, os_release, dict(packages or OLD_PACKAGES))
        roots.append(root)
        return root

    yield _make
    for root in roots:
        kill_node_vms(root)


@pytest.fixture
def agents():
    """Start agents through this list-like helper; all are stopped at teardown."""
    started = []

    class Agents:
        def start(self, node_root, role="host", driver="sim", **kw):
            handle = start_agent(node_root, role, driver=driver, **kw)
            started.append(handle)
            return handle

        def track(self, handle):
            started.append(handle)
            return handle

    yield Agents()
    for handle in started:
        stop_agent(handle, timeout=3.0)

