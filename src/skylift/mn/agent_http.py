"""The MN's HTTP/1.1 to its agents: an httpx transport on the event loop's own streams.

What the MN asks an agent is small JSON over one kept-alive connection per agent, thousands
of agents at once. httpcore (under httpx) spent most of the MN's CPU around each request in a
reconnect storm: its pool's bookkeeping, h11's state machine, a cancel scope per read and
write (docs/benchmarks.md, "Agent rollout"). This transport writes the request as bytes and
reads the answer with the loop's stream reader (TLS in C under uvloop), and keeps idle
connections per agent. httpx's client stays above it (URLs, headers, JSON, timeouts), and
errors are httpx's own, raised as httpcore's would be: an SSL failure stays the cause of the
ConnectError, which is how the agent client tells a wrong scheme from an agent that is down.

Only what agents answer is spoken: HTTP/1.1, Content-Length, chunked, or a body to the
close; no proxies, no HTTP/2, no upgrade, no 100-continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import ssl
import time

import httpx

READ_LIMIT = 1 << 20  # a stream reader's buffer; agents' answers are small
IDLE_SECONDS = 4.0  # an agent (uvicorn) closes a connection idle for 5 s: reuse only younger
NO_BODY = {204, 304}


class _Connection:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        """Whether an idle connection can carry the next request: young enough, and nothing
        arrived on it meanwhile (an agent's close shows as EOF or readable bytes)."""
        if time.monotonic() - self.idle_since > IDLE_SECONDS:
            return False
        if self.reader.at_eof() or self.reader.exception() or self.writer.transport.is_closing():
            return False
        sock = self.writer.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return False
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        return not poll.poll(0)

    def close(self) -> None:
        self.writer.close()


@contextlib.contextmanager
def _mapped(timeout_error: type[httpx.TimeoutException], other: type[httpx.TransportError],
            request: httpx.Request):
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error(str(exc) or "timed out", request=request) from exc
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError("Server disconnected without sending a complete "
                                        "response.", request=request) from exc
    except asyncio.LimitOverrunError as exc:
        raise httpx.RemoteProtocolError("the answer's head is too long",
                                        request=request) from exc
    except (OSError, EOFError, ssl.SSLError) as exc:  # SSLError is an OSError; said for clarity
        raise other(str(exc) or type(exc).__name__, request=request) from exc
    except ValueError as exc:  # a status line, header or chunk size that is not HTTP
        raise httpx.RemoteProtocolError(f"not an HTTP answer: {exc}", request=request) from exc


def _head(request: httpx.Request, body: bytes) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    has_length = False
    for name, value in request.headers.raw:
        has_length = has_length or name.lower() == b"content-length"
        lines.append(name + b": " + value)
    if body and not has_length:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]]
                     ) -> tuple[bytes, bool]:
    """The body as the headers frame it, and whether it ended with the connection."""
    values = {k.lower(): v for k, v in headers}
    if b"chunked" in values.get(b"transfer-encoding", b"").lower():
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return b"".join(parts), False
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if b"content-length" in values:
        return await reader.readexactly(int(values[b"content-length"])), False
    return await reader.read(), True


class AgentTransport(httpx.AsyncBaseTransport):
    """Keep-alive HTTP/1.1 connections to agents, idle ones kept per agent."""

    def __init__(self, *, verify: ssl.SSLContext, max_keepalive: int = 256) -> None:
        self.context, self.max_keepalive = verify, max_keepalive
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._idle_count = 0

    async def _connect(self, request: httpx.Request, key: tuple[str, str, int],
                       timeout: float | None) -> _Connection:
        scheme, host, port = key
        tls = self.context if scheme == "https" else None
        with _mapped(httpx.ConnectTimeout, httpx.ConnectError, request):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None,
                    ssl_handshake_timeout=timeout if tls else None, limit=READ_LIMIT)
        return _Connection(reader, writer)

    def _take_idle(self, key) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            self._idle_count -= 1
            if conn.usable():
                return conn
            conn.close()
        return None

    def _keep(self, key, conn: _Connection) -> None:
        if self._idle_count >= self.max_keepalive:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(conn)
        self._idle_count += 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = _head(request, body)
        conn = self._take_idle(key)
        if conn is None:
            conn = await self._connect(request, key, timeouts.get("connect"))
        try:
            status, headers, content, closes = await self._exchange(conn, request, head + body,
                                                                    timeouts)
        except BaseException:
            conn.writer.transport.abort()
            raise
        if closes or request.headers.get("connection", "").lower() == "close":
            conn.close()
        else:
            self._keep(key, conn)
        return httpx.Response(status, headers=headers, content=content,
                              extensions={"http_version": b"HTTP/1.1"})

    async def _exchange(self, conn: _Connection, request: httpx.Request, data: bytes,
                        timeouts: dict) -> tuple[int, list, bytes, bool]:
        with _mapped(httpx.WriteTimeout, httpx.WriteError, request):
            conn.writer.write(data)
            async with asyncio.timeout(timeouts.get("write")):
                await conn.writer.drain()
        with _mapped(httpx.ReadTimeout, httpx.ReadError, request):
            async with asyncio.timeout(timeouts.get("read")):
                try:
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial:  # hung up before a byte: what a TLS agent does to HTTP
                        raise httpx.RemoteProtocolError(
                            "Server disconnected without sending a response.",
                            request=request) from None
                    raise
                status_line, *lines = raw[:-4].split(b"\r\n")
                version, status = status_line.split(b" ", 2)[:2]
                headers = [(name.strip(), value.strip())
                           for name, _, value in (line.partition(b":") for line in lines)]
                code = int(status)
                if request.method == "HEAD" or code in NO_BODY or 100 <= code < 200:
                    content, closes = b"", False
                else:
                    content, closes = await _read_body(conn.reader, headers)
        closes = closes or version != b"HTTP/1.1" or any(
            k.lower() == b"connection" and v.lower() == b"close" for k, v in headers)
        return code, headers, content, closes

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0
