"""The MN's HTTP to its agents (skylift.mn.agent_http): a connection an agent closed is never
reused, a silent agent times out, nobody listening is said at once, each as the agent
client's errors say it; bodies framed by length, by chunks or by the close are read whole, a
connection is kept only when the answer lets it be, and what is not HTTP is an error."""

from __future__ import annotations

import asyncio
import time

import pytest

from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.launch import free_port, restart_agent, start_agent, stop_agent
from skylift.agent.node import init_node
from skylift.errors import AgentUnreachable
from skylift.mn.agent_pool import AgentPool


def _client(pool: AgentPool, url: str):
    pool.open()
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
        kill_node_vms(root)  # and the node's sim daemon, which outlives its agents


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


def _serve_answers(answers: list[bytes]):
    """A server that answers each request (read to its blank line and body) with the next of
    `answers`, closing the connection after an answer that ends with the close; it records
    the requests and how many connections it accepted."""
    seen: dict = {"requests": [], "connections": 0}

    async def serve(reader, writer):
        seen["connections"] += 1
        try:
            while answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                seen["requests"].append(head + await reader.readexactly(length))
                answer = answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"Content-Length" not in answer and b"chunked" not in answer:
                    break  # a body that ends with the connection
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    return serve, seen


def test_bodies_by_length_chunks_and_close_and_the_connection_kept_only_when_allowed():
    answers = [
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n'
        b'{"one": 1} ',
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
        b'6\r\n{"two"\r\n3\r\n: 2\r\n1\r\n}\r\n0\r\n\r\n',
        b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"three": 3}',
        b'HTTP/1.1 201 Created\r\nContent-Length: 11\r\n\r\n{"four": 4}',
    ]

    async def scenario():
        serve, seen = _serve_answers(answers)
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        pool = AgentPool(max_concurrency=4, timeout=5.0, token="t0ken")
        try:
            client = _client(pool, url)
            got = [await client.version(), await client.list_vms(), await client.health(),
                   await client.install_package("skylift-agent", "4.3.12")]
        finally:
            await pool.close()
            server.close()
        return got, seen

    got, seen = asyncio.run(scenario())

    assert got == [{"one": 1}, {"two": 2}, {"three": 3}, {"four": 4}]
    # one connection for the framed answers, a new one after the answer that ended with it
    assert seen["connections"] == 2
    post = seen["requests"][3]
    assert post.startswith(b"POST /v1/packages HTTP/1.1\r\n")
    assert post.endswith(b'{"name":"skylift-agent","version":"4.3.12"}')
    assert b"\r\nhost: 127.0.0.1:" in post.lower() and b"t0ken" in post


def test_an_answer_that_is_not_http_is_an_unreachable_agent_not_a_crash():
    async def garbage(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    async def scenario():
        server = await asyncio.start_server(garbage, "127.0.0.1", 0)
        pool = AgentPool(max_concurrency=4, timeout=5.0, token=None)
        try:
            with pytest.raises(AgentUnreachable) as err:
                await _client(pool, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
                              ).version()
            return err.value
        finally:
            await pool.close()
            server.close()

    assert "RemoteProtocolError" in asyncio.run(scenario()).why


def test_an_answer_that_arrives_in_pieces_is_read_whole():
    answer = (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
              b'6\r\n{"two"\r\n3\r\n: 2\r\n1\r\n}\r\n0\r\n\r\n')

    async def dribble(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        for i in range(0, len(answer), 5):  # the head and every chunk split across writes
            writer.write(answer[i:i + 5])
            await writer.drain()
            await asyncio.sleep(0.005)
        await reader.read()  # the client keeps the connection: wait for it to close
        writer.close()

    async def scenario():
        server = await asyncio.start_server(dribble, "127.0.0.1", 0)
        pool = AgentPool(max_concurrency=4, timeout=5.0, token=None)
        try:
            return await _client(pool, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
                                 ).version()
        finally:
            await pool.close()
            server.close()

    assert asyncio.run(scenario()) == {"two": 2}


def test_at_the_cap_the_connection_idle_longest_goes_and_the_newest_is_kept():
    from skylift.mn.agent_http import AgentHttp

    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}'
    accepted: dict[int, int] = {}

    async def scenario():
        servers = []
        for _ in range(3):
            async def serve(reader, writer, index=len(servers)):
                accepted[index] = accepted.get(index, 0) + 1
                try:
                    while True:
                        await reader.readuntil(b"\r\n\r\n")
                        writer.write(answer)
                        await writer.drain()
                except asyncio.IncompleteReadError:
                    writer.close()
            servers.append(await asyncio.start_server(serve, "127.0.0.1", 0))
        urls = [f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}/v1/health" for s in servers]
        http = AgentHttp(verify=None, max_keepalive=2, timeout=5.0)
        try:
            for i in (0, 1, 2, 2, 1, 0):  # 0 is evicted when 2 is kept; 1 and 2 reused
                assert (await http.request("GET", urls[i])).json() == {}
        finally:
            await http.aclose()
            for server in servers:
                server.close()

    asyncio.run(scenario())
    assert accepted == {0: 2, 1: 1, 2: 1}


def test_a_length_that_is_not_digits_is_not_http():
    from skylift.mn.agent_http import _parse

    for head in (b"Content-Length: -5", b"Content-Length: +2", b"Transfer-Encoding: chunked"):
        body = b"-1\r\n\r\n" if b"chunked" in head else b"{}"
        with pytest.raises(ValueError):
            _parse(bytearray(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + body), "GET", True)
    whole = _parse(bytearray(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"), "GET", False)
    assert whole == (200, [(b"Content-Length", b"2")], b"{}", False, 40)
