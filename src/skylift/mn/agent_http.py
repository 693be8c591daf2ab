"""The MN's HTTP/1.1 to its agents: a small client on the event loop's own streams.

What the MN asks an agent is small JSON over one kept-alive connection per agent, thousands
of agents at once. httpcore (under httpx) spent most of the MN's CPU around each request in a
reconnect storm: its pool's bookkeeping, h11's state machine, a cancel scope per read and
write; with a transport of our own under httpx, httpx's client layer (URL objects, request
and response models, the cookie jar) was the largest cost left above the TLS handshakes
(docs/benchmarks.md, "Agent rollout"). AgentHttp writes the request as bytes and reads the
answer with the loop's stream reader (TLS in C under uvloop), and keeps idle connections per
agent. It answers AsyncAgentClient's `request` as httpx.AsyncClient would, and its errors are
httpx's own types: an SSL failure stays the cause of the ConnectError, which is how the agent
client tells a wrong scheme from an agent that is down.

Only what agents answer is spoken: HTTP/1.1, Content-Length, chunked, or a body to the
close; no proxies, no HTTP/2, no upgrade, no 100-continue, no redirects, no cookies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import select
import ssl
import time
from urllib.parse import urlsplit

import httpx

READ_LIMIT = 1 << 20  # a stream reader's buffer; agents' answers are small
IDLE_SECONDS = 4.0  # an agent (uvicorn) closes a connection idle for 5 s: reuse only younger
NO_BODY = {204, 304}


class AgentResponse:
    """An agent's answer: what AsyncAgentClient reads of an httpx.Response."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]],
                 content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    def json(self):
        """The body as JSON (ValueError when it is not)."""
        return jsonlib.loads(self.content)


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
def _mapped(timeout_error: type[httpx.TimeoutException], other: type[httpx.TransportError]):
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error(str(exc) or "timed out") from exc
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError("Server disconnected without sending a complete "
                                        "response.") from exc
    except asyncio.LimitOverrunError as exc:
        raise httpx.RemoteProtocolError("the answer's head is too long") from exc
    except (OSError, EOFError, ssl.SSLError) as exc:  # SSLError is an OSError; said for clarity
        raise other(str(exc) or type(exc).__name__) from exc
    except ValueError as exc:  # a status line, header or chunk size that is not HTTP
        raise httpx.RemoteProtocolError(f"not an HTTP answer: {exc}") from exc


def _target(url: str) -> tuple[tuple[str, str, int], bytes, bytes]:
    """(scheme, host, port), the Host header's value and the request target of a URL."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme not in ("http", "https") or not parts.hostname:
        raise httpx.UnsupportedProtocol(f"not an agent's URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (scheme, parts.hostname, port), parts.netloc.encode(), path.encode()


def _head(method: str, netloc: bytes, path: bytes, headers: dict[str, str] | None,
          body: bytes) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (method.encode(), path), b"Host: " + netloc]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}".encode())
    if body:
        lines += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    elif method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: 0")
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


def _timeouts(timeout) -> tuple[float | None, float | None, float | None]:
    """(connect, write, read) of an httpx.Timeout, or one number for all three."""
    if timeout is None or isinstance(timeout, (int, float)):
        return timeout, timeout, timeout
    return timeout.connect, timeout.write, timeout.read


class AgentHttp:
    """Keep-alive HTTP/1.1 connections to many agents, idle ones kept per agent.

    request() is the part of httpx.AsyncClient's that AsyncAgentClient uses: absolute URLs,
    headers, a JSON body and a timeout; it returns an AgentResponse."""

    def __init__(self, *, verify: ssl.SSLContext | None, max_keepalive: int = 256,
                 timeout: float = 10.0) -> None:
        self.context, self.max_keepalive, self.timeout = verify, max_keepalive, timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._idle_count = 0

    async def _connect(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = key
        tls = self.context if scheme == "https" else None
        if scheme == "https" and tls is None:
            raise httpx.ConnectError(f"no TLS context to reach {host}:{port} over https")
        with _mapped(httpx.ConnectTimeout, httpx.ConnectError):
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

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      timeout=None, json=None) -> AgentResponse:
        """Send one request to the agent at url and read its whole answer."""
        key, netloc, path = _target(url)
        connect, write, read = _timeouts(self.timeout if timeout is None else timeout)
        body = (jsonlib.dumps(json, separators=(",", ":")).encode()
                if json is not None else b"")
        data = _head(method, netloc, path, headers, body) + body
        conn = self._take_idle(key)
        if conn is None:
            conn = await self._connect(key, connect)
        try:
            status, answer_headers, content, closes = await self._exchange(
                conn, method, data, write, read)
        except BaseException:
            conn.writer.transport.abort()
            raise
        if closes:
            conn.close()
        else:
            self._keep(key, conn)
        return AgentResponse(status, answer_headers, content)

    async def _exchange(self, conn: _Connection, method: str, data: bytes,
                        write: float | None, read: float | None
                        ) -> tuple[int, list, bytes, bool]:
        with _mapped(httpx.WriteTimeout, httpx.WriteError):
            conn.writer.write(data)
            async with asyncio.timeout(write):
                await conn.writer.drain()
        with _mapped(httpx.ReadTimeout, httpx.ReadError):
            async with asyncio.timeout(read):
                try:
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial:  # hung up before a byte: what a TLS agent does to HTTP
                        raise httpx.RemoteProtocolError(
                            "Server disconnected without sending a response.") from None
                    raise
                status_line, *lines = raw[:-4].split(b"\r\n")
                version, status = status_line.split(b" ", 2)[:2]
                headers = [(name.strip(), value.strip())
                           for name, _, value in (line.partition(b":") for line in lines)]
                code = int(status)
                if method == "HEAD" or code in NO_BODY or 100 <= code < 200:
                    content, closes = b"", False
                else:
                    content, closes = await _read_body(conn.reader, headers)
        closes = closes or version != b"HTTP/1.1" or any(
            k.lower() == b"connection" and v.lower() == b"close" for k, v in headers)
        return code, headers, content, closes

    async def aclose(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        self._idle_count = 0
