"""Which management node drives which resource, when several share one database: consistent
hashing on the resource's uuid over the live MNs (as ZStack shares hosts out among its MNs).

Each live MN owns the resources whose uuid hashes to it on a ring of virtual points: it alone
connects, pings, reconnects and upgrades them. When an MN dies its resources fall to the
others, each to the next point on the ring; when one joins, about 1/N of them move to it and
nothing else moves.

The members are the MNs whose heartbeat row (skylift.mn.heartbeat) says "running" and is
fresh. A row of this machine whose process is gone is not a member even while it is fresh:
an MN killed here is known dead at once, not after the heartbeat ages out.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import socket
from collections.abc import Iterable

import sqlalchemy as sa

from skylift.mn.heartbeat import INTERVAL, mn_heartbeat, utcnow
from skylift.processes import pid_alive

VNODES = 160  # points per member: shares within a few percent of 1/N at 3 members
MEMBER_MAX_AGE = dt.timedelta(seconds=3 * INTERVAL)  # three missed beats: gone


def _point(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class HashRing:
    """A consistent-hash ring of members (MN uuids)."""

    def __init__(self, members: Iterable[str], vnodes: int = VNODES) -> None:
        self.members = tuple(sorted(set(members)))
        points = sorted((_point(f"{m}#{i}"), m) for m in self.members for i in range(vnodes))
        self._keys = [p for p, _ in points]
        self._owners = [m for _, m in points]

    def owner(self, key: str) -> str | None:
        """The member owning key (None: no member at all)."""
        if not self._keys:
            return None
        i = bisect.bisect(self._keys, _point(key)) % len(self._keys)
        return self._owners[i]

    def shares(self, keys: Iterable[str]) -> dict[str, int]:
        """How many of keys each member owns."""
        out = {m: 0 for m in self.members}
        for key in keys:
            owner = self.owner(key)
            if owner is not None:
                out[owner] += 1
        return out


def live_members(conn: sa.Connection, now: dt.datetime | None = None) -> list[dict]:
    """The MNs serving in normal mode now: heartbeat "running", fresh, and (on this machine)
    a process that still runs."""
    now = now or utcnow()
    here = socket.gethostname()
    out = []
    for row in conn.execute(sa.select(mn_heartbeat)).mappings():
        if (row["state"] or "") != "running" or row["heartbeat_at"] is None:
            continue
        if now - row["heartbeat_at"] > MEMBER_MAX_AGE:
            continue
        if row["hostname"] == here and not pid_alive(row["pid"], "skylift.mn"):
            continue
        out.append(dict(row))
    return sorted(out, key=lambda r: r["uuid"])


class Ownership:
    """This MN's share of the resources, refreshed from the heartbeats."""

    def __init__(self, engine: sa.Engine, member: str) -> None:
        self.engine = engine
        self.member = member
        self.ring = HashRing([member])

    def refresh(self) -> bool:
        """Re-read the live members; whether the ring changed. This MN is always a member
        (it runs: its own row may simply not be written yet)."""
        with self.engine.connect() as conn:
            members = {r["uuid"] for r in live_members(conn)} | {self.member}
        if tuple(sorted(members)) == self.ring.members:
            return False
        self.ring = HashRing(members)
        return True

    def owns(self, uuid: str) -> bool:
        return self.ring.owner(uuid) == self.member
