"""The MN's HTTP/1.1 to its agents: a small client on the event loop's own streams.

What the MN asks an agent is small JSON over one kept-alive connection per agent, thousands
of agents at once. httpcore (under httpx) spent most of the MN's CPU around each request in a
reconnect storm: its pool's bookkeeping, h11's state machine, a cancel scope per read and
write; with a transport of our own under httpx, httpx's client layer (URL objects, request
and response models, the cookie jar) was the largest cost left above the TLS handshakes
(docs/benchmarks.md, "Agent rollout"). AgentHttp writes the request as bytes and parses the
answer from what a protocol of its own has received (TLS in C under uvloop; no stream reader
and writer per connection), and keeps idle connections per agent. It answers AsyncAgentClient's `request` as httpx.AsyncClient would, and its errors are
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

READ_LIMIT = 1 << 20  # the longest head of an answer taken; agents' answers are small
IDLE_SECONDS = 4.0  # an agent (uvicorn) closes a connection idle for 5 s: reuse only younger
NO_BODY = {204, 304}
DIGITS = {10: frozenset(b"0123456789"), 16: frozenset(b"0123456789abcdefABCDEF")}


class AgentResponse:
    """An agent's answer: what AsyncAgentClient reads of an httpx.Response."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]],
                 content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    def json(self):
        """The body as JSON (ValueError when it is not)."""
        return jsonlib.loads(self.content)


class _Connection(asyncio.Protocol):
    """One connection to an agent: what arrived on it, and whether it ended."""

    __slots__ = ("transport", "buffer", "ended", "error", "waiter", "idle_since")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # the agent closed its side (EOF) or the connection was lost
        self.error: BaseException | None = None  # why it was lost, when not cleanly
        self.waiter: asyncio.Future | None = None
        self.idle_since = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self.ended, self.error = True, exc
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def arrival(self) -> None:
        """Wait until more bytes arrive or the connection ends."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def usable(self) -> bool:
        """Whether an idle connection can carry the next request: young enough, and nothing
        arrived on it meanwhile (an agent's close shows as EOF or readable bytes)."""
        if time.monotonic() - self.idle_since > IDLE_SECONDS:
            return False
        if self.ended or self.buffer or self.transport.is_closing():
            return False
        sock = self.transport.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return False
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        return not poll.poll(0)

    def close(self) -> None:
        self.transport.close()


@contextlib.contextmanager
def _mapped(timeout_error: type[httpx.TimeoutException], other: type[httpx.TransportError]):
    try:
        yield
    except TimeoutError as exc:
        raise timeout_error(str(exc) or "timed out") from exc
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


def _length(text: bytes, base: int) -> int:
    """A body's or a chunk's length; ValueError unless it is digits of the base."""
    text = text.strip()
    if not text or not set(text) <= DIGITS[base]:  # int() would take "-5", "+5" and "1_0"
        raise ValueError(f"not a length: {text[:20]!r}")
    return int(text, base)


def _parse(buf: bytearray, method: str, ended: bool):
    """(status, headers, body, closes, bytes used) of a whole answer at the start of buf, or
    None while more is to come. ValueError when it is not HTTP."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > READ_LIMIT:
            raise ValueError("the answer's head is too long")
        return None
    status_line, *lines = bytes(buf[:end]).split(b"\r\n")
    version, status = status_line.split(b" ", 2)[:2]
    code = int(status)
    headers = [(name.strip(), value.strip())
               for name, _, value in (line.partition(b":") for line in lines)]
    closes = version != b"HTTP/1.1" or any(
        k.lower() == b"connection" and v.lower() == b"close" for k, v in headers)
    pos = end + 4
    if method == "HEAD" or code in NO_BODY or 100 <= code < 200:
        return code, headers, b"", closes, pos
    values = {k.lower(): v for k, v in headers}
    if b"chunked" in values.get(b"transfer-encoding", b"").lower():
        parts = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = _length(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:
                while True:  # trailers, to the blank line
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        return None
                    blank, pos = eol == pos, eol + 2
                    if blank:
                        return code, headers, b"".join(parts), closes, pos
            if len(buf) < pos + size + 2:
                return None
            parts.append(bytes(buf[pos:pos + size]))
            pos += size + 2
    if b"content-length" in values:
        length = _length(values[b"content-length"], 10)
        if len(buf) < pos + length:
            return None
        return code, headers, bytes(buf[pos:pos + length]), closes, pos + length
    if not ended:  # a body that ends with the connection
        return None
    return code, headers, bytes(buf[pos:]), True, len(buf)


def _timeouts(timeout) -> tuple[float | None, float | None]:
    """(connect, answer) of an httpx.Timeout (its read timeout), or one number for both."""
    if timeout is None or isinstance(timeout, (int, float)):
        return timeout, timeout
    return timeout.connect, timeout.read


class AgentHttp:
    """Keep-alive HTTP/1.1 connections to many agents, idle ones kept per agent.

    request() is the part of httpx.AsyncClient's that AsyncAgentClient uses: absolute URLs,
    headers, a JSON body and a timeout; it returns an AgentResponse."""

    def __init__(self, *, verify: ssl.SSLContext | None, max_keepalive: int = 256,
                 timeout: float = 10.0) -> None:
        self.context, self.max_keepalive, self.timeout = verify, max_keepalive, timeout
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._order: dict[_Connection, tuple[str, str, int]] = {}  # idle ones, oldest first
        self.opened = 0  # connections made (each over TLS a handshake): what reuse saved

    async def _connect(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = key
        tls = self.context if scheme == "https" else None
        if scheme == "https" and tls is None:
            raise httpx.ConnectError(f"no TLS context to reach {host}:{port} over https")
        loop = asyncio.get_running_loop()
        with _mapped(httpx.ConnectTimeout, httpx.ConnectError):
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None,
                    ssl_handshake_timeout=timeout if tls else None)
        self.opened += 1
        return conn

    def _take_idle(self, key) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            del self._order[conn]
            if conn.usable():
                return conn
            conn.close()
        return None

    def _keep(self, key, conn: _Connection) -> None:
        """Keep conn idle for the agent's next request; at the cap, the connection idle the
        longest goes (the likeliest to be stale: an agent asked once in a storm keeps its
        connection until it is asked again, and the next request of the agent just answered
        is the likeliest to come)."""
        if self.max_keepalive <= 0:
            conn.close()
            return
        if len(self._order) >= self.max_keepalive:
            oldest, old_key = next(iter(self._order.items()))
            del self._order[oldest]
            idle = self._idle[old_key]
            idle.remove(oldest)
            if not idle:
                del self._idle[old_key]
            oldest.close()
        conn.idle_since = time.monotonic()
        self._idle.setdefault(key, []).append(conn)
        self._order[conn] = key

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                      timeout=None, json=None) -> AgentResponse:
        """Send one request to the agent at url and read its whole answer."""
        key, netloc, path = _target(url)
        connect, read = _timeouts(self.timeout if timeout is None else timeout)
        body = (jsonlib.dumps(json, separators=(",", ":")).encode()
                if json is not None else b"")
        data = _head(method, netloc, path, headers, body) + body
        conn = self._take_idle(key)
        if conn is None:
            conn = await self._connect(key, connect)
        try:
            status, answer_headers, content, closes = await self._exchange(
                conn, method, data, read)
        except BaseException:
            conn.transport.abort()
            raise
        if closes:
            conn.close()
        else:
            self._keep(key, conn)
        return AgentResponse(status, answer_headers, content)

    async def _exchange(self, conn: _Connection, method: str, data: bytes,
                        read: float | None) -> tuple[int, list, bytes, bool]:
        # a request is a few hundred bytes: the transport buffers it, and the answer's
        # timeout covers its sending too
        with _mapped(httpx.WriteTimeout, httpx.WriteError):
            conn.transport.write(data)
        with _mapped(httpx.ReadTimeout, httpx.ReadError):
            async with asyncio.timeout(read):
                while True:
                    answer = _parse(conn.buffer, method, conn.ended)
                    if answer is not None:
                        break
                    if conn.ended:
                        if conn.error is not None:
                            raise conn.error
                        raise httpx.RemoteProtocolError(
                            "Server disconnected without sending a complete response."
                            if conn.buffer else
                            # hung up before a byte: what a TLS agent does to plain HTTP
                            "Server disconnected without sending a response.")
                    await conn.arrival()
        code, headers, content, closes, used = answer
        del conn.buffer[:used]
        return code, headers, content, closes or bool(conn.buffer)

    async def aclose(self) -> None:
        """Close every idle connection."""
        for conn in self._order:
            conn.close()
        self._idle.clear()
        self._order.clear()
