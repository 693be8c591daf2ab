"""API calls in flight: every request is listed from its start to its end (GET /v1/api-calls).

An upgrade reports these before it stops the MN, and drain waits for them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from dataclasses import dataclass


@dataclass
class Call:
    id: int
    method: str
    path: str
    started_at: dt.datetime
    started: float  # monotonic

    def to_dict(self) -> dict:
        return {"id": self.id, "method": self.method, "path": self.path,
                "started_at": self.started_at.isoformat() + "Z",
                "age": round(time.monotonic() - self.started, 3)}


class InFlight:
    """The registry of calls being served now."""

    def __init__(self) -> None:
        self._calls: dict[int, Call] = {}
        self._ids = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self, method: str, path: str) -> int:
        call = Call(next(self._ids), method, path,
                    dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), time.monotonic())
        self._calls[call.id] = call
        self._idle.clear()
        return call.id

    def end(self, call_id: int) -> None:
        self._calls.pop(call_id, None)
        if not self._calls:
            self._idle.set()

    def list(self, exclude: int | None = None) -> list[dict]:
        """Calls in flight, oldest first (without the caller's own)."""
        return [c.to_dict() for c in sorted(self._calls.values(), key=lambda c: c.started)
                if c.id != exclude]

    async def wait_until(self, count: int, timeout: float) -> bool:
        """Wait until at most `count` calls are in flight (the waiter's own included)."""
        deadline = time.monotonic() + timeout
        while len(self._calls) > count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(0.05, left))
        return True


class InFlightMiddleware:
    """ASGI middleware that registers each HTTP request for as long as it is served."""

    def __init__(self, app, registry: InFlight) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            return await self.app(scope, receive, send)
        call_id = self.registry.begin(scope["method"], scope["path"])
        scope.setdefault("state", {})["call_id"] = call_id
        try:
            return await self.app(scope, receive, send)
        finally:
            self.registry.end(call_id)
