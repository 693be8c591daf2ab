"""Probes in a process of their own, for a benchmark that runs the measured tool in its own.

The VM prober keeps 64 threads busy; in the benchmark's process they would share one GIL with
the upgrade being measured, and the upgrade's event loop would wait its turn behind them (the
proof's reading of 1,004 agents took 109 s so, 17 s with the probes beside it in another
process). An operator's tool never shares a process with the load that watches it.

    probes = ProbesProcess(out_dir, api_url=..., vms=...).start()  # the arguments of Probes
    ...; summary = probes.stop()
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

from skylift.lab.probes import Probes, Summary


def _watch(out_dir: Path, kwargs: dict, started, stop) -> None:
    probes = Probes(out_dir, **kwargs).start()
    started.set()
    stop.wait()
    probes.stop()  # writes summary.json, which the parent reads
    used = os.times()
    (out_dir / "cpu.json").write_text(json.dumps({"cpu_seconds": used.user + used.system}))


class ProbesProcess:
    """Probes(out_dir, **kwargs) sampling in a child process; start() then stop()."""

    def __init__(self, out_dir: Path, **kwargs) -> None:
        self.out_dir = Path(out_dir)
        self._kwargs = kwargs
        ctx = multiprocessing.get_context("spawn")  # no copy of the parent's threads or pools
        self._started, self._stop = ctx.Event(), ctx.Event()
        self._process = ctx.Process(target=_watch, name="skylift-probes", daemon=True,
                                    args=(self.out_dir, kwargs, self._started, self._stop))
        self._summary: Summary | None = None
        self.cpu_seconds: float | None = None  # what the child used, once stopped

    def start(self) -> "ProbesProcess":
        """Start the child and return once it samples."""
        self._process.start()
        if not self._started.wait(60):
            self._process.kill()
            raise RuntimeError("the probes' process did not start within 60 s")
        return self

    @property
    def stopped(self) -> bool:
        return self._summary is not None

    def stop(self) -> Summary:
        """Stop sampling; the summary the child wrote (the same one if already stopped)."""
        if self._summary is None:
            self._stop.set()
            self._process.join(60)
            if self._process.exitcode != 0:
                raise RuntimeError(f"the probes' process ended with {self._process.exitcode}")
            data = json.loads((self.out_dir / "summary.json").read_text())
            self._summary = Summary.from_dict(data)
            self.cpu_seconds = json.loads((self.out_dir / "cpu.json").read_text())["cpu_seconds"]
        return self._summary
