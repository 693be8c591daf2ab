"""The network under the MN's agent pools: httpcore over the event loop's own transports.

httpcore's default backend runs every connection through anyio: TLS is pumped through an
`ssl.SSLObject` in Python, and every read and write opens a cancel scope. Under the MN's
loop (uvloop where installed) the loop's transports do TLS in C and asyncio.timeout costs a
timer: a reconnect storm of 1,004 agents over mutual TLS spent a fifth of the MN's CPU in
that layer (docs/benchmarks.md, "Agent rollout"). Errors are httpcore's, mapped as its own
backend maps them (an SSL failure stays the cause of the ConnectError, which is how the
agent client tells a wrong scheme from an agent that is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
import typing

import httpcore
import httpx
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

READ_LIMIT = 1 << 20  # a stream reader's buffer; agents' answers are small


@contextlib.contextmanager
def _mapped(timeout_error: type[Exception], other: type[Exception]):
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error(str(exc) or "timed out") from exc
    except (OSError, EOFError, ssl.SSLError) as exc:  # SSLError is an OSError; said for clarity
        raise other(str(exc) or type(exc).__name__) from exc


class LoopStream(AsyncNetworkStream):
    """One connection to an agent, as asyncio streams of the running loop."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
            async with asyncio.timeout(timeout):
                return await self.reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
            self.writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self.writer.drain()

    async def aclose(self) -> None:
        self.writer.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> AsyncNetworkStream:
        try:
            with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
                await self.writer.start_tls(ssl_context, server_hostname=server_hostname,
                                            ssl_handshake_timeout=timeout)
        except Exception:
            self.writer.transport.abort()
            raise
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "ssl_object":
            return self.writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self.writer.get_extra_info("sockname")
        if info == "server_addr":
            return self.writer.get_extra_info("peername")
        if info == "socket":
            return self.writer.get_extra_info("socket")
        if info == "is_readable":  # asked of an idle pooled connection: has the agent closed it?
            return self._readable()
        return None

    def _readable(self) -> bool:
        # the loop's transport reads eagerly: the agent's close shows in the reader (or the
        # transport) before it shows on the socket
        if self.reader.at_eof() or self.reader.exception() or self.writer.transport.is_closing():
            return True
        sock = self.writer.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return True
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        return bool(poll.poll(0))


class LoopBackend(AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio loop's transports."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable | None = None) -> AsyncNetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None,
                    limit=READ_LIMIT)
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return LoopStream(reader, writer)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable | None = None
                                  ) -> AsyncNetworkStream:
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path, limit=READ_LIMIT)
        return LoopStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def loop_transport(*, verify: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections run on LoopBackend (HTTP/1.1, no proxy)."""
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    # httpx takes no network backend of its own: give its pool the same settings and ours
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=verify, max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False,
        network_backend=LoopBackend())
    return transport
