"""Transactions that lose a write conflict, and running them again.

On a Galera cluster every member takes writes, and a transaction is certified against the
writes of all of them at commit: the loser of two conflicting transactions on different
members is rolled back with ER_LOCK_DEADLOCK (1213), "Deadlock found when trying to get lock;
try restarting transaction" — also when nothing deadlocked on its own member. A single
server reports the same code for a real InnoDB deadlock. Either way the advice is the
server's own: run the whole transaction again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

LOCK_DEADLOCK = 1213       # ER_LOCK_DEADLOCK: a certification failure on Galera
LOCK_WAIT_TIMEOUT = 1205   # ER_LOCK_WAIT_TIMEOUT
RETRYABLE = (LOCK_DEADLOCK, LOCK_WAIT_TIMEOUT)
T = TypeVar("T")


def lost_conflict(exc: BaseException) -> bool:
    """Whether a database error is a transaction rolled back by a write conflict."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    return bool(args) and args[0] in RETRYABLE


def retry_conflicts(work: Callable[[], T], attempts: int = 6, base_delay: float = 0.02) -> T:
    """work() (one whole transaction), run again when it loses a write conflict, with a
    short random backoff so two writers do not collide again in step; the last error is
    raised when every attempt lost."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except sa.exc.DBAPIError as exc:
            if attempt == attempts or not lost_conflict(exc):
                raise
            time.sleep(base_delay * attempt * (1 + random.random()))
    raise AssertionError("unreachable")
