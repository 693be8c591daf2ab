"""A limit on the size of a request's body (1 MiB): no call of the MN needs more.

A body declared larger (Content-Length) is refused with 413 before a byte of it is read; a
body without a length (chunked) is counted as it is read and refused with 413 once it passes
the limit, so a caller can never make the MN hold more than the limit of one request.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException

from skylift.mn.api.errors import RequestTooLarge

MAX_BODY = 1 << 20  # 1 MiB


def too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"the request's body is larger than {_size(limit)}",
                           why="the management node takes bodies of at most "
                               f"{_size(limit)} ({limit} bytes)",
                           next="send less in one call")


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n % (1 << 20) else f"{n} bytes"


class BodyTooLarge(HTTPException):
    """Raised while the body is read: the app's error handlers answer it as a JSON 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request's body is larger than {_size(limit)}")
        self.error = too_large(limit)


class BodyLimitMiddleware:
    """ASGI middleware: 413 for a request whose body is (or would be) over max_bytes."""

    def __init__(self, app, max_bytes: int = MAX_BODY) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", []):
            if key.lower() == b"content-length":
                declared = value.strip()
                # uvicorn has checked it is a number; one of more than 19 digits is huge
                if len(declared) > 19 or not declared.isdigit() or \
                        int(declared) > self.max_bytes:
                    return await self._refuse(send)
        read = 0
        started = False

        async def counting_receive():
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send) -> None:
        body = json.dumps(too_large(self.max_bytes).to_dict()).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
