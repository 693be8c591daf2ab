"""The MN's agent pools on the loop's own transports (skylift.mn.agent_streams): a connection
an agent closed is never reused, a silent agent times out, and nobody listening is said
at once, each as the agent client's errors say it."""

from __future__ import annotations

import asyncio
import time

import pytest

from skylift.agent.launch import free_port, restart_agent, start_agent, stop_agent
from skylift.agent.node import init_node
from skylift.errors import AgentUnreachable
from skylift.mn.agent_pool import AgentPool


def _client(pool: AgentPool, url: str):
    pool.open(1)
    return pool.client(url, url, lambda: url)


def test_a_connection_the_agent_closed_is_not_used_again(tmp_path):
    root = tmp_path / "node"
    init_node(root, "host", "c74", {"skylift-agent": "4.3.12"})
    agent = start_agent(root, "host")
    started = [agent]
    try:
        async def scenario():
            pool = AgentPool(max_concurrency=4, timeout=10.0, token=None)
            try:
                client = _client(pool, agent.url)
                first = await client.boot_id()
                restarted = await asyncio.to_thread(restart_agent, agent)
                started.append(restarted)
                # the kept-alive connection went with the old agent: the pool notices
                second = await client.boot_id()
                return first, second, restarted
            finally:
                await pool.close()

        first, second, restarted = asyncio.run(scenario())
        assert second["agent_boot_id"] != first["agent_boot_id"]
        assert second["pid"] == restarted.pid
    finally:
        for handle in started:
            if handle.alive():
                stop_agent(handle)


def test_a_silent_agent_times_out_and_nobody_listening_is_said_at_once():
    async def silent(reader, writer):
        await asyncio.sleep(30)  # accepts, never answers

    async def scenario():
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = AgentPool(max_concurrency=4, timeout=0.5, token=None)
        try:
            with pytest.raises(AgentUnreachable) as slow:
                await _client(pool, f"http://127.0.0.1:{port}").version()
            began = time.monotonic()
            with pytest.raises(AgentUnreachable) as refused:
                await _client(pool, f"http://127.0.0.1:{free_port()}").version()
            return slow.value, refused.value, time.monotonic() - began
        finally:
            await pool.close()
            server.close()

    slow, refused, seconds = asyncio.run(scenario())
    assert slow.timed_out and "ReadTimeout" in slow.why
    assert not refused.timed_out and "ConnectError" in refused.why and seconds < 0.5
