"""Convergence: resources whose connect failed are retried on a short backoff, not on the ping
interval, while a convergence window is open (after the MN starts, and whenever asked — the
upgrade asks while it waits for every agent).

A retry first probes the agent's health with a short timeout, so a dead node costs one
cheap connection attempt per round, not a connect slot for the whole agent timeout; a node
that answers is connected (and upgraded) at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("skylift.mn.convergence")


class Convergence:
    """The retry schedule of resources that failed to connect, and the loop that runs it."""

    def __init__(self, *, retry_min: float, retry_max: float, window: float,
                 probe: Callable[[str], Awaitable[None]],
                 connect: Callable[[str], Awaitable[object]],
                 busy: Callable[[str], bool], concurrency: int = 100) -> None:
        """probe(uuid) raises when the agent does not answer; connect(uuid) connects it;
        busy(uuid) says a connect of it is already running."""
        self.retry_min, self.retry_max, self.window = retry_min, retry_max, window
        self._probe, self._connect, self._busy = probe, connect, busy
        self._sem = asyncio.Semaphore(concurrency)
        self._due: dict[str, float] = {}  # uuid -> monotonic time of its next retry
        self._tries: dict[str, int] = {}  # failed retries in a row
        self._until = 0.0  # the window is open until this monotonic time
        self._running: set[asyncio.Task] = set()

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._until

    def open(self, seconds: float | None = None) -> None:
        """Open (or extend) the window, and make every scheduled retry due now."""
        self._until = max(self._until, time.monotonic() + (seconds or self.window))
        now = time.monotonic()
        for uuid in self._due:
            self._due[uuid] = now
            self._tries[uuid] = 0

    def failed(self, uuid: str) -> None:
        """A connect of uuid failed: retry it after the next backoff (while the window is
        open)."""
        tries = self._tries.get(uuid, 0) + 1
        self._tries[uuid] = tries
        delay = min(self.retry_max, self.retry_min * 2 ** (tries - 1))
        # a little jitter, so a group cut off together does not come back in lockstep
        self._due[uuid] = time.monotonic() + delay * random.uniform(0.8, 1.0)

    def succeeded(self, uuid: str) -> None:
        """uuid is connected: no more retries."""
        self._due.pop(uuid, None)
        self._tries.pop(uuid, None)

    def retry_now(self, uuid: str) -> None:
        """Retry uuid at the next tick (with a fresh backoff), while the window is open."""
        self._due[uuid] = time.monotonic()
        self._tries[uuid] = 0

    def next_retry_in(self, uuid: str) -> float | None:
        """Seconds to the next retry of uuid (None: none scheduled or the window is shut)."""
        due = self._due.get(uuid)
        if due is None or not self.is_open:
            return None
        return max(0.0, due - time.monotonic())

    async def run(self, tick: float = 0.1) -> None:
        """Start every due retry, forever (cancel to stop)."""
        try:
            while True:
                await asyncio.sleep(tick)
                if not self.is_open or not self._due:
                    continue
                now = time.monotonic()
                for uuid in [u for u, due in self._due.items() if due <= now]:
                    if self._busy(uuid):
                        self._due[uuid] = now + self.retry_min
                        continue
                    self._due[uuid] = float("inf")  # until this retry ends
                    task = asyncio.create_task(self._retry(uuid))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
        finally:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _retry(self, uuid: str) -> None:
        try:
            async with self._sem:
                await self._probe(uuid)
        except asyncio.CancelledError:
            raise
        except Exception:  # still down: the next round, a little later
            if uuid in self._due:
                self.failed(uuid)
            return
        try:
            await self._connect(uuid)  # records success or failure through the manager
        except asyncio.CancelledError:
            raise
        except Exception:
            pass
