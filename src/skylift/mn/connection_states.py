"""Each agent-backed resource's connection state as the MN knows it.

States live in memory (the API reads them without touching the database); every change is
queued in `pending` and reaches the `status` columns in batches (see resources.PendingWrites).
"""

from __future__ import annotations

from skylift.errors import HostDisconnected, HostReconnecting
from skylift.mn.resources import (CONNECTED, CONNECTING, DISCONNECTED, PendingWrites,
                                  Resource)


class ConnectionStates:
    """Connected / Connecting / Disconnected, and pings missed in a row, per resource."""

    def __init__(self) -> None:
        self._state: dict[str, str] = {}
        self._missed: dict[str, int] = {}
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
