"""Plans: an ordered list of named phases, each a group of idempotent steps (kubeadm-style).

A *step* says what it does in one line, how to tell its effect is already there (`is_done`),
how to do it (`run`) and, optionally, how to take it back (`undo`). Running a step twice must
equal running it once: that contract is what makes `resume` after a crash safe.

A plan is printable before anything runs (`render()` for people, `to_dict()` for `--json`),
has stable step keys `phase/step`, a fingerprint (so a journal can tell whether it was written
for this very plan), and `select()` picks phases by name to re-run them alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from skylift.errors import PlanError


class Step:
    """One idempotent unit of work. Subclass it, or build one with `step(...)`.

    Class attributes: `id` (unique in its phase, no '/'), `description` (one line),
    `point_of_no_return` (once done, `rollback` is refused: roll forward instead),
    `changes_nothing` (it only reads, fetches or verifies: a refusal by such a step before
    any changing step ran ends the run as refused, with nothing to resume or roll back).
    """

    id: str = ""
    description: str = ""
    point_of_no_return: bool = False
    changes_nothing: bool = False
    undo_summary: str = ""  # what `undo` takes back, in words for people ("" = nothing to say)

    def is_done(self, ctx: Any) -> bool:
        """True when the step's effect is already there (then it is recorded done, not run).

        The default says "not done": such a step always runs and must be safe to run again.
        """
        return False

    def run(self, ctx: Any) -> None:  # pragma: no cover - overridden
        """Do the work. Must be idempotent: a second run after a crash equals one run."""
        raise NotImplementedError

    def undo(self, ctx: Any) -> None:
        """Take the effect back (for rollback). Must tolerate a partial or absent effect.

        Not overriding it means the step has nothing to undo (it only reads or verifies).
        """

    def estimate_seconds(self, ctx: Any) -> float | None:
        """A rough duration for the dry-run plan; None when unknown."""
        return None

    # --- what the runner asks about the step's declaration ---

    @property
    def verifiable(self) -> bool:
        """Whether the step defines `is_done` (then the runner checks it after `run`)."""
        return _overrides(self, "is_done")

    @property
    def reversible(self) -> bool:
        """Whether the step defines `undo`."""
        return _overrides(self, "undo")

    def __repr__(self) -> str:
        return f"<Step {self.id}>"


def _overrides(obj: Step, name: str) -> bool:
    if isinstance(obj, FunctionStep):
        return getattr(obj, f"_{name}") is not None
    return getattr(type(obj), name) is not getattr(Step, name)


class FunctionStep(Step):
    """A step made of plain functions by `step(...)`."""

    def __init__(self, id: str, description: str, run: Callable[[Any], None], *,
                 is_done: Callable[[Any], bool] | None = None,
                 undo: Callable[[Any], None] | None = None,
                 estimate: float | Callable[[Any], float | None] | None = None,
                 point_of_no_return: bool = False) -> None:
        self.id = id
        self.description = description
        self._run = run
        self._is_done = is_done
        self._undo = undo
        self._estimate = estimate
        self.point_of_no_return = point_of_no_return

    def is_done(self, ctx: Any) -> bool:
        return bool(self._is_done(ctx)) if self._is_done else False

    def run(self, ctx: Any) -> None:
        self._run(ctx)

    def undo(self, ctx: Any) -> None:
        if self._undo:
            self._undo(ctx)

    def estimate_seconds(self, ctx: Any) -> float | None:
        if callable(self._estimate):
            return self._estimate(ctx)
        return self._estimate


def step(id: str, description: str, run: Callable[[Any], None], **kw: Any) -> FunctionStep:
    """Build a step from functions: run(ctx), and optionally is_done(ctx), undo(ctx),
    estimate (seconds or a function of ctx) and point_of_no_return."""
    return FunctionStep(id, description, run, **kw)


@dataclass
class Phase:
    """A named group of steps with a one-line description; runnable alone by name."""

    name: str
    description: str
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedStep:
    """A step in its place in a plan: `key` is the stable id `phase/step`."""

    key: str
    phase: Phase
    step: Step
    index: int


def _check_id(kind: str, value: str) -> None:
    if not value or "/" in value or value != value.strip():
        raise PlanError(f"bad {kind} id {value!r}", why="ids are non-empty, without '/' or spaces")


class Plan:
    """An ordered list of phases. `id` names the workflow (e.g. 'upgrade-single-mn')."""

    def __init__(self, id: str, phases: Iterable[Phase], *, description: str = "") -> None:
        self.id = id
        self.description = description
        self.phases = list(phases)
        names = [p.name for p in self.phases]
        for name in names:
            _check_id("phase", name)
            if names.count(name) > 1:
                raise PlanError(f"plan {id} has two phases named {name}")
        for p in self.phases:
            ids = [s.id for s in p.steps]
            for sid in ids:
                _check_id("step", sid)
                if ids.count(sid) > 1:
                    raise PlanError(f"phase {p.name} has two steps named {sid}")

    def steps(self) -> list[PlannedStep]:
        """Every step in order, with its stable key `phase/step`."""
        out = []
        for p in self.phases:
            for s in p.steps:
                out.append(PlannedStep(f"{p.name}/{s.id}", p, s, len(out)))
        return out

    def step(self, key: str) -> PlannedStep:
        """The step with this key; PlanError naming the known keys if there is none."""
        for ps in self.steps():
            if ps.key == key:
                return ps
        raise PlanError(f"no step {key} in plan {self.id}")

    def phase(self, name: str) -> Phase:
        """The phase with this name; PlanError listing the phases if there is none."""
        for p in self.phases:
            if p.name == name:
                return p
        raise PlanError(f"no phase {name!r} in plan {self.id}",
                        next=f"phases: {', '.join(p.name for p in self.phases)}")

    def select(self, *names: str) -> Plan:
        """A plan of only the named phases (in plan order), to re-run them alone."""
        wanted = {self.phase(n).name for n in names}  # raises on an unknown name
        return Plan(f"{self.id}[{','.join(n for n in names)}]",
                    [p for p in self.phases if p.name in wanted], description=self.description)

    def fingerprint(self) -> str:
        """A digest of the plan's shape (ids, order, flags): a journal of another shape is refused."""
        shape = [self.id] + [[ps.key, ps.step.point_of_no_return] for ps in self.steps()]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]

    def estimate_seconds(self, ctx: Any = None) -> float | None:
        """The sum of the steps' estimates; None if no step has one."""
        known = [e for e in (_estimate(ps.step, ctx) for ps in self.steps()) if e is not None]
        return sum(known) if known else None

    def to_dict(self, ctx: Any = None) -> dict[str, Any]:
        """The plan for `--json`: phases with their steps, flags and estimates."""
        return {
            "id": self.id,
            "description": self.description,
            "fingerprint": self.fingerprint(),
            "estimate_seconds": self.estimate_seconds(ctx),
            "phases": [{
                "name": p.name,
                "description": p.description,
                "steps": [{
                    "key": f"{p.name}/{s.id}",
                    "id": s.id,
                    "description": s.description,
                    "point_of_no_return": s.point_of_no_return,
                    "reversible": s.reversible,
                    "estimate_seconds": _estimate(s, ctx),
                } for s in p.steps],
            } for p in self.phases],
        }

    def render(self, ctx: Any = None) -> str:
        """The plan as a tree for people (dry run), with estimates and the point of no return."""
        lines = [f"plan {self.id}" + (f": {self.description}" if self.description else "")]
        for pi, p in enumerate(self.phases):
            last_phase = pi == len(self.phases) - 1
            lines.append(f"{'└─' if last_phase else '├─'} {p.name}: {p.description}")
            indent = "   " if last_phase else "│  "
            for si, s in enumerate(p.steps):
                branch = "└─" if si == len(p.steps) - 1 else "├─"
                extra = []
                est = _estimate(s, ctx)
                if est is not None:
                    extra.append(f"~{format_seconds(est)}")
                if s.point_of_no_return:
                    extra.append("POINT OF NO RETURN")
                tail = f"  [{', '.join(extra)}]" if extra else ""
                lines.append(f"{indent}{branch} {s.id}: {s.description}{tail}")
        total = self.estimate_seconds(ctx)
        n = len(self.steps())
        lines.append(f"{_plural(len(self.phases), 'phase')}, {_plural(n, 'step')}"
                     + (f", about {format_seconds(total)}" if total is not None else ""))
        return "\n".join(lines)


def _estimate(s: Step, ctx: Any) -> float | None:
    # An estimate is advice; a step whose estimate fails must not stop a dry run.
    try:
        return s.estimate_seconds(ctx)
    except Exception:  # noqa: BLE001
        return None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_seconds(seconds: float) -> str:
    """'45s', '3m20s', '1h05m': short durations for plans and reports."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
