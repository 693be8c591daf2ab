"""Progress for people: rich bars with counts and an ETA, fed by the engine's event stream.

`watch(bus, json_output=...)` is what a command uses: with `--json` every event goes to stdout
as one JSON line (JsonLinesSink); otherwise a RichProgress shows one bar for the plan's steps
and one per fan-out label (e.g. "hosts reconnected 812/1000, 3 failed, ETA 0:00:41"), and a
line per finished step.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)

from skylift.engine import events as ev
from skylift.engine.plan import format_seconds


class RichProgress:
    """An event subscriber that draws progress bars; use it as a context manager."""

    def __init__(self, console: Console | None = None, *, transient: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TimeElapsedColumn(), console=self.console, transient=transient)
        self._plan_task: TaskID | None = None
        self._labels: dict[str, TaskID] = {}
        self._phase = ""

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _print(self, text: str) -> None:
        self.progress.console.print(text, highlight=False)

    def __call__(self, event: ev.Event) -> None:
        """Update the bars for one event."""
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler:
            handler(event)

    def _on_run_started(self, e: ev.RunStarted) -> None:
        est = f", about {format_seconds(e.estimate_seconds)}" if e.estimate_seconds else ""
        verb = "resuming" if e.resume else "running"
        self._print(f"[bold]{verb} {e.plan_id}[/] (run {e.run_id}, {e.total_steps} steps{est})")
        self._plan_task = self.progress.add_task(e.plan_id, total=e.total_steps)

    def _on_phase_started(self, e: ev.PhaseStarted) -> None:
        self._phase = e.phase
        if self._plan_task is not None:
            self.progress.update(self._plan_task, description=f"{e.phase}: {e.description}")

    def _advance(self) -> None:
        if self._plan_task is not None:
            self.progress.advance(self._plan_task)

    def _on_step_started(self, e: ev.StepStarted) -> None:
        if self._plan_task is not None:
            self.progress.update(self._plan_task, description=f"{e.step}: {e.description}")

    def _on_step_done(self, e: ev.StepDone) -> None:
        self._advance()
        self._print(f"[green]✓[/] {e.step} ({format_seconds(e.seconds)})")

    def _on_step_skipped(self, e: ev.StepSkipped) -> None:
        self._advance()
        self._print(f"[dim]· {e.step}: {e.reason}[/]")

    def _on_step_failed(self, e: ev.StepFailed) -> None:
        self._print(f"[bold red]✗ {e.step}[/]: {e.error}")

    def _on_step_undone(self, e: ev.StepUndone) -> None:
        self._print(f"[yellow]↶[/] {e.step}" + (f" ({e.note})" if e.note else ""))

    def _on_progress(self, e: ev.Progress) -> None:
        desc = f"  {e.label}" + (f" [red]({e.failures} failed)[/]" if e.failures else "")
        task = self._labels.get(e.label)
        if task is None:
            self._labels[e.label] = self.progress.add_task(desc, total=e.total,
                                                           completed=e.done)
        else:
            self.progress.update(task, description=desc, completed=e.done, total=e.total)

    def _on_check_finished(self, e: ev.CheckFinished) -> None:
        colour = {"passed": "green", "info": "cyan", "warning": "yellow"}.get(e.status, "red")
        self._print(f"[{colour}]{e.status:>9}[/] {e.check_id}")

    def _on_message(self, e: ev.Message) -> None:
        colour = {"warning": "yellow", "error": "red"}.get(e.level, "default")
        self._print(f"[{colour}]{e.text}[/]")

    def _on_run_finished(self, e: ev.RunFinished) -> None:
        colour = "green" if e.status in ("ok", "rolled_back") else "red"
        if self._plan_task is not None:
            self.progress.update(self._plan_task, description=f"{e.plan_id}: {e.status}")
        self._print(f"[{colour}]{e.plan_id}: {e.status}[/] in {format_seconds(e.seconds)} "
                    f"({e.ran} run, {e.skipped} skipped)")


@contextmanager
def watch(bus: ev.EventBus, *, json_output: bool = False,
          console: Console | None = None) -> Iterator[None]:
    """Render the bus's events for the duration of the block: JSON lines or rich progress."""
    if json_output:
        unsubscribe = bus.subscribe(ev.JsonLinesSink(sys.stdout))
        try:
            yield
        finally:
            unsubscribe()
        return
    with RichProgress(console) as renderer:
        unsubscribe = bus.subscribe(renderer)
        try:
            yield
        finally:
            unsubscribe()
