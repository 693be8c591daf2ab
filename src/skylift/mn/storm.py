"""A reconnect storm's report, and the garbage-collector setting a storm runs under."""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass, field


@dataclass
class ReconnectReport:
    """What one reconnect storm did."""

    total: int = 0
    connected: int = 0
    agents_upgraded: int = 0
    packages_updated: int = 0  # hosts whose libvirt/QEMU were updated
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # uuid -> what went wrong
    by_kind: dict[str, int] = field(default_factory=dict)
    agent_connections: int = 0  # connections (TLS handshakes) the storm made to agents

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def per_second(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {"total": self.total, "connected": self.connected, "failed": self.failed,
                "agents_upgraded": self.agents_upgraded,
                "packages_updated": self.packages_updated, "seconds": round(self.seconds, 3),
                "per_second": round(self.per_second, 1), "by_kind": self.by_kind,
                "agent_connections": self.agent_connections,
                "failures": self.failures}


_storms = 0  # storms running in this process (the GC setting is process-wide)
_gc_threshold = gc.get_threshold()


@contextlib.contextmanager
def storm_gc():
    """Fewer, cheaper garbage collections while a storm runs; put back afterwards.

    Every SSH connection leaves reference cycles, so the collector runs every few hundred
    allocations and its full passes walk the whole heap (10,000 resources, tasks, pools).
    Freezing what exists and collecting the young generation every 100,000 allocations makes
    a storm markedly cheaper (docs/benchmarks.md)."""
    global _storms, _gc_threshold
    _storms += 1
    if _storms == 1:
        _gc_threshold = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        _storms -= 1
        if _storms == 0:
            gc.set_threshold(*_gc_threshold)
            gc.unfreeze()
