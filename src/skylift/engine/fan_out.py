"""Fan-out: apply one function to many items (hosts, agents) with bounded concurrency, a
failure threshold and progress events."""

from __future__ import annotations

import asyncio
import inspect
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Iterable, TypeVar

from skylift.engine.events import EventBus, Progress, ensure_bus
from skylift.errors import error_text

T = TypeVar("T")


@dataclass
class ItemResult(Generic[T]):
    """One item's outcome: ok, failed (with the error text) or not_started (threshold hit)."""

    item: T
    status: str
    value: Any = None
    error: str = ""
    seconds: float = 0.0


@dataclass
class FanOutResult(Generic[T]):
    """Per-item results in the order of the items, and the counts."""

    label: str
    results: list[ItemResult[T]]
    stopped: bool  # True when the failure threshold stopped new work from starting
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def succeeded(self) -> int:
        return self.count("ok")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def not_started(self) -> int:
        return self.count("not_started")

    def failures(self) -> list[ItemResult[T]]:
        return [r for r in self.results if r.status == "failed"]

    def to_dict(self, key: Callable[[T], str] = str) -> dict[str, Any]:
        return {"label": self.label, "ok": self.succeeded, "failed": self.failed,
                "not_started": self.not_started, "stopped": self.stopped,
                "seconds": round(self.seconds, 3),
                "failures": [{"item": key(r.item), "error": r.error} for r in self.failures()]}


def threshold_exceeded(failures: int, total: int, threshold: int | float | None) -> bool:
    """Whether `failures` exceed the threshold: an int is a count, a float in (0, 1) a fraction
    of the total; None never stops."""
    if threshold is None:
        return False
    if isinstance(threshold, float) and 0 < threshold < 1:
        return failures > threshold * total
    return failures > threshold


async def fan_out(items: Iterable[T], fn: Callable[[T], Awaitable[Any] | Any], *,
                  concurrency: int, failure_threshold: int | float | None = None,
                  events: EventBus | None = None, label: str = "items",
                  timeout: float | None = None) -> FanOutResult[T]:
    """Apply fn to every item with at most `concurrency` at once.

    fn may be async or plain (a plain function runs in a worker thread). Once failures exceed
    `failure_threshold`, no new item starts (those in flight finish) and the rest are
    `not_started`. Emits Progress(label, done, total, failures) at the start and after each item.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    bus = ensure_bus(events)
    items = list(items)
    total = len(items)
    results: list[ItemResult[T]] = [ItemResult(it, "not_started") for it in items]
    counts = {"done": 0, "failed": 0}
    next_index = iter(range(total))
    start = time.monotonic()
    bus.emit(Progress(label, 0, total, 0))

    async def call(item: T) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(item)
        value = await asyncio.to_thread(fn, item)
        return await value if inspect.isawaitable(value) else value

    async def worker() -> None:
        while not threshold_exceeded(counts["failed"], total, failure_threshold):
            i = next(next_index, None)
            if i is None:
                return
            t0 = time.monotonic()
            try:
                coro = call(items[i])
                value = await (asyncio.wait_for(coro, timeout) if timeout else coro)
                results[i] = ItemResult(items[i], "ok", value, seconds=time.monotonic() - t0)
            except Exception as exc:  # noqa: BLE001 - one item's failure is a result
                text = "timed out" if isinstance(exc, TimeoutError) else error_text(exc)
                results[i] = ItemResult(items[i], "failed", error=text,
                                        seconds=time.monotonic() - t0)
                counts["failed"] += 1
            counts["done"] += 1
            bus.emit(Progress(label, counts["done"], total, counts["failed"]))

    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    stopped = any(r.status == "not_started" for r in results)
    return FanOutResult(label, results, stopped, time.monotonic() - start)


def fan_out_sync(items: Iterable[T], fn: Callable[[T], Any], **kw: Any) -> FanOutResult[T]:
    """`fan_out` for callers that are not async (runs its own event loop)."""
    return asyncio.run(fan_out(items, fn, **kw))
