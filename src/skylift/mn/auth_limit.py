"""Rate limiting failed authentications, per client address, in memory.

After MAX_FAILURES failed authentications from one address within WINDOW seconds, every
further call from it that does not carry the admin token is answered 429 with Retry-After
(the seconds until its oldest failure leaves the window), without looking the token up. A
call with valid credentials never counts; the admin's token is checked before this limit and
never waits. Memory is bounded: at most MAX_FAILURES times per address and MAX_ADDRESSES
addresses (the quietest are forgotten first).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque

MAX_FAILURES = 10
WINDOW = 60.0
MAX_ADDRESSES = 4096


class FailureLimiter:
    """Failed authentications per client address within a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW,
                 max_addresses: int = MAX_ADDRESSES, clock=time.monotonic) -> None:
        self.max_failures, self.window, self.max_addresses = max_failures, window, max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str) -> int:
        """Seconds this address must wait before its next try (0: it may try now)."""
        now = self.clock()
        times = self._recent(address, now)
        if times is None or len(times) < self.max_failures:
            return 0
        return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, address: str) -> None:
        """Count one failed authentication from this address."""
        now = self.clock()
        times = self._recent(address, now)
        if times is None:
            times = self._failures[address] = deque(maxlen=self.max_failures)
        times.append(now)
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
