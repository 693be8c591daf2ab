"""fan_out: the concurrency bound, failure thresholds (count and fraction), progress events."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skylift.engine import EventBus, Recorder, fan_out, fan_out_sync
from skylift.engine.events import Progress
from skylift.engine.fan_out import threshold_exceeded


class Tracker:
    """An async fn that records how many calls overlap, failing for chosen items."""

    def __init__(self, failing=(), delay=0.001):
        self.now = 0
        self.peak = 0
        self.started: list[int] = []
        self.failing = set(failing)
        self.delay = delay

    async def __call__(self, item: int) -> int:
        self.started.append(item)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.delay)
            if item in self.failing:
                raise RuntimeError(f"host {item} refused")
            return item * 2
        finally:
            self.now -= 1


def recorded():
    rec, bus = Recorder(), EventBus()
    bus.subscribe(rec)
    return rec, bus


def test_concurrency_is_bounded_and_reached():
    fn = Tracker()
    result = fan_out_sync(range(50), fn, concurrency=7, label="hosts")
    assert fn.peak == 7 and result.succeeded == 50 and not result.stopped
    assert [r.value for r in result.results] == [i * 2 for i in range(50)]


def test_absolute_threshold_stops_new_work():
    fn = Tracker(failing=range(100))
    result = fan_out_sync(range(100), fn, concurrency=1, failure_threshold=2)
    assert result.failed == 3 and result.not_started == 97 and result.stopped
    assert fn.started == [0, 1, 2]
    assert result.failures()[0].error == "RuntimeError: host 0 refused"


def test_fraction_threshold():
    fn = Tracker(failing=range(0, 100, 2))
    result = fan_out_sync(range(100), fn, concurrency=1, failure_threshold=0.1)
    assert result.failed == 11 and result.stopped  # more than 10% of 100


def test_in_flight_work_finishes_after_the_threshold():
    fn = Tracker(failing={0}, delay=0.01)
    result = fan_out_sync(range(20), fn, concurrency=4, failure_threshold=0)
    assert result.failed == 1 and result.succeeded == 3 and result.not_started == 16


def test_no_threshold_runs_everything():
    fn = Tracker(failing=range(10))
    result = fan_out_sync(range(10), fn, concurrency=3)
    assert result.failed == 10 and result.not_started == 0 and not result.stopped


def test_plain_functions_run_in_threads():
    active, peak, lock = [0], [0], threading.Lock()

    def work(item):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return item

    result = fan_out_sync(range(12), work, concurrency=4)
    assert result.succeeded == 12 and 1 < peak[0] <= 4


def test_timeout_is_a_failure():
    async def slow(item):
        await asyncio.sleep(1 if item == 3 else 0)

    result = fan_out_sync(range(5), slow, concurrency=5, timeout=0.05)
    assert result.failed == 1 and result.results[3].error == "timed out"


def test_progress_events_count_up():
    rec, bus = recorded()
    fan_out_sync(range(10), Tracker(failing={4}), concurrency=3, events=bus, label="agents")
    progress = rec.of(Progress)
    assert progress[0] == Progress("agents", 0, 10, 0, ts=progress[0].ts)
    assert [p.done for p in progress] == list(range(11))
    assert progress[-1].failures == 1 and all(p.label == "agents" for p in progress)


def test_bad_concurrency_and_empty_input():
    with pytest.raises(ValueError):
        fan_out_sync([1], Tracker(), concurrency=0)
    result = fan_out_sync([], Tracker(), concurrency=3)
    assert result.results == [] and not result.stopped


def test_to_dict_names_the_failures():
    result = fan_out_sync(["h1", "h2"], lambda h: 1 / (h == "h1"), concurrency=2, label="x")
    d = result.to_dict()
    assert d["ok"] == 1 and d["failed"] == 1 and d["failures"][0]["item"] == "h2"


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), failing=st.sets(st.integers(0, 29)), concurrency=st.integers(1, 6),
       threshold=st.one_of(st.none(), st.integers(0, 5), st.floats(0.05, 0.95)))
def test_fan_out_invariants(n, failing, concurrency, threshold):
    fn = Tracker(failing=failing, delay=0)
    result = asyncio.run(fan_out(range(n), fn, concurrency=concurrency,
                                 failure_threshold=threshold))
    assert fn.peak <= concurrency
    assert result.succeeded + result.failed + result.not_started == n
    assert result.failed == len(failing & set(fn.started))
    if result.not_started:
        assert threshold_exceeded(result.failed, n, threshold)
        # after the threshold only the calls already in flight may have finished
        assert result.failed <= (threshold if isinstance(threshold, int)
                                 else int(threshold * n)) + concurrency
    else:
        assert len(fn.started) == n
