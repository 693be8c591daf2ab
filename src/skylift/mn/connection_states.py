"""Each agent-backed resource's connection state as the MN knows it.

States live in memory (the API reads them without touching the database); every change is
queued in `pending` and reaches the `status` columns in batches (see resources.PendingWrites).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from skylift.errors import HostDisconnected, HostReconnecting
from skylift.mn.resources import (CONNECTED, CONNECTING, DISCONNECTED, PendingWrites,
                                  Resource)


@dataclass
class Failure:
    """Why a resource's last connect failed, and since when it has been failing."""

    reason: str  # a code of connect_failures.REASONS
    detail: str  # the error as a person reads it
    attempts: int = 1
    since: float = 0.0  # wall-clock time of the first failure in a row
    last: float = 0.0  # wall-clock time of the latest


class ConnectionStates:
    """Connected / Connecting / Disconnected, pings missed in a row, and why the last connect
    failed, per resource."""

    def __init__(self) -> None:
        self._state: dict[str, str] = {}
        self._missed: dict[str, int] = {}
        self._failures: dict[str, Failure] = {}
        self.pending = PendingWrites()

    def track(self, uuid: str) -> None:
        """Know a resource (Disconnected until it is connected)."""
        self._state.setdefault(uuid, DISCONNECTED)
        self._missed.setdefault(uuid, 0)

    def state(self, uuid: str) -> str:
        """Connected, Connecting or Disconnected (a resource never connected: Disconnected)."""
        return self._state.get(uuid, DISCONNECTED)

    def set(self, res: Resource, state: str) -> None:
        """Change a resource's state, and queue the change for the database."""
        if self._state.get(res.uuid) != state:
            self._state[res.uuid] = state
            self.pending.status[(res.kind, res.uuid)] = state

    def failed(self, uuid: str, reason: str, detail: str) -> Failure:
        """Record a failed connect (the reason replaces the last one; attempts count up)."""
        now = time.time()
        known = self._failures.get(uuid)
        if known is None:
            known = self._failures[uuid] = Failure(reason, detail, 0, now)
        known.reason, known.detail, known.last = reason, detail, now
        known.attempts += 1
        return known

    def connected(self, uuid: str) -> None:
        """A connect succeeded: the resource's failures are over."""
        self._failures.pop(uuid, None)
        self._missed[uuid] = 0

    def failure(self, uuid: str) -> Failure | None:
        """Why the resource's last connect failed (None when it has not failed since)."""
        return self._failures.get(uuid)

    def missed(self, uuid: str) -> int:
        """Pings (and connect attempts) missed in a row."""
        return self._missed.get(uuid, 0)

    def miss(self, uuid: str) -> int:
        """Count one more missed ping or failed connect; the count in a row."""
        self._missed[uuid] = self._missed.get(uuid, 0) + 1
        return self._missed[uuid]

    def answered(self, uuid: str) -> None:
        """The resource answered: its missed count starts again."""
        self._missed[uuid] = 0

    def counts(self) -> dict[str, int]:
        """How many resources are in each state."""
        out = {CONNECTED: 0, CONNECTING: 0, DISCONNECTED: 0}
        for st in self._state.values():
            out[st] += 1
        return out

    def require_connected(self, uuid: str, name: str) -> None:
        """Refuse VM and volume work on a host that is not Connected."""
        st = self.state(uuid)
        if st == CONNECTED:
            return
        if st == CONNECTING:
            raise HostReconnecting(f"host {name} is reconnecting, retry later",
                                   why="its agent is being reconnected (and upgraded) by the "
                                       "management node",
                                   next="retry in a few seconds; GET the host to see its status")
        raise HostDisconnected(f"host {name} is disconnected",
                               why="its agent does not answer the management node",
                               next="check the host and its agent; it reconnects once the "
                                    "agent answers")
