"""An agent at an IPv6 address is reached by the MN (its URL has the address in brackets)."""

from __future__ import annotations

import asyncio

from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.launch import start_agent, stop_agent
from skylift.agent.node import init_node
from skylift.mn.agent_pool import AgentPool
from skylift.mn.resources import HOST, Resource


def test_the_mn_reaches_an_agent_on_an_ipv6_address(tmp_path):
    root = tmp_path / "node"
    init_node(root, "host", "c74")
    handle = start_agent(root, "host", host="::1", port=0, os_release="c74")
    try:
        res = Resource(kind=HOST, uuid="a" * 32, name="v6", address="::1")
        assert res.url(handle.port) == f"http://[::1]:{handle.port}"

        async def ask() -> dict:
            pool = AgentPool(max_concurrency=4, timeout=5.0, token=None)
            try:
                return await pool.client(res.uuid, res.address,
                                         lambda: res.url(handle.port)).version()
            finally:
                await pool.close()

        assert asyncio.run(ask())["role"] == "host"
    finally:
        stop_agent(handle)
        kill_node_vms(root)  # the node's hypervisor outlives its agent, as a real one does
