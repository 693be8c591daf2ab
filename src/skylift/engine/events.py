"""One event stream for a run: the runner, the checks and fan-outs emit; renderers subscribe.

The same events feed the rich progress bars (skylift.cli.progress), `--json` output
(JsonLinesSink) and anything else that wants to watch a run (a web console, a test). Events are
small frozen dataclasses; `to_dict()` gives the JSON form with an `event` key naming the kind.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Callable, ClassVar

Subscriber = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    """Base of every event; `ts` is the wall-clock time it was made (seconds since the epoch)."""

    kind: ClassVar[str] = "event"
    ts: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: {"event": kind, "ts": ..., <fields>}."""
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    plan_id: str
    run_id: str
    total_steps: int
    phases: list[str]
    resume: bool = False
    estimate_seconds: float | None = None


@dataclass(frozen=True)
class PhaseStarted(Event):
    kind: ClassVar[str] = "phase_started"
    phase: str
    description: str
    steps: int


@dataclass(frozen=True)
class PhaseFinished(Event):
    kind: ClassVar[str] = "phase_finished"
    phase: str
    seconds: float


@dataclass(frozen=True)
class StepStarted(Event):
    kind: ClassVar[str] = "step_started"
    step: str
    description: str
    estimate_seconds: float | None = None


@dataclass(frozen=True)
class StepDone(Event):
    kind: ClassVar[str] = "step_done"
    step: str
    seconds: float


@dataclass(frozen=True)
class StepSkipped(Event):
    """A step not run: the journal says it is done, or its effect is already there."""

    kind: ClassVar[str] = "step_skipped"
    step: str
    reason: str


@dataclass(frozen=True)
class StepFailed(Event):
    kind: ClassVar[str] = "step_failed"
    step: str
    error: str


@dataclass(frozen=True)
class StepUndone(Event):
    kind: ClassVar[str] = "step_undone"
    step: str
    note: str = ""


@dataclass(frozen=True)
class Progress(Event):
    """Progress of a fan-out (or any counted work) named `label`."""

    kind: ClassVar[str] = "progress"
    label: str
    done: int
    total: int
    failures: int = 0


@dataclass(frozen=True)
class CheckFinished(Event):
    kind: ClassVar[str] = "check_finished"
    check_id: str
    status: str  # "passed" or the worst severity of its findings


@dataclass(frozen=True)
class Message(Event):
    """A line for people (a caveat, a hint); `level` is info, warning or error."""

    kind: ClassVar[str] = "message"
    text: str
    level: str = "info"


@dataclass(frozen=True)
class Measured(Event):
    """Figures measured beside a run by whoever watched it (probes, a benchmark), for the
    run's report: a titled table, and the data behind it for the report's JSON form.

    The watcher emits it; the report writer collects it. Neither knows the other's code.
    """

    kind: ClassVar[str] = "measured"
    title: str
    columns: list[str]
    rows: list[list[Any]]
    data: Any = None


@dataclass(frozen=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    plan_id: str
    run_id: str
    status: str  # ok, failed, rolled_back, interrupted
    seconds: float
    ran: int = 0
    skipped: int = 0


class EventBus:
    """Fan events out to subscribers, in the order they subscribed.

    A subscriber that raises does not stop the run (a broken progress bar must never break an
    upgrade): the error is kept in `errors` and the other subscribers still get the event.
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()  # fan-outs may emit from worker threads
        self.errors: list[tuple[Event, BaseException]] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Give the event to every subscriber."""
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception as exc:  # noqa: BLE001 - see class docstring
                self.errors.append((event, exc))


class Recorder:
    """A subscriber that keeps every event (for tests and for building reports)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, cls: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


class JsonLinesSink:
    """A subscriber that writes each event as one JSON line (for `--json`), flushed at once."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        self.stream.write(json.dumps(event.to_dict(), default=str, sort_keys=True) + "\n")
        self.stream.flush()


def ensure_bus(events: EventBus | None) -> EventBus:
    """The bus given, or a new one nobody listens to (so emitters never test for None)."""
    return events if events is not None else EventBus()
