"""Running a plan with a journal: in order, resumable after a crash, and rollback until the
point of no return.

Resume semantics (the contract that makes `skylift upgrade resume` safe):
- a step the journal records as done is skipped;
- the step that was in flight when the process died is re-verified with `is_done`: if its
  effect is there it is recorded done, otherwise it runs again (steps are idempotent);
- any other step whose `is_done` is already true is recorded done without running;
- the first failure is journalled and stops the run with a StepError saying which step, why,
  and to fix the cause and resume;
- a refusal (skylift.errors.Refused) by a step that changes nothing, while no step that
  changes something is done, ends the run as "refused" and is raised as it is (exit 2):
  nothing changed, so there is nothing to resume or roll back and the next run starts clean.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

from skylift.engine.events import (EventBus, Message, PhaseFinished, PhaseStarted, RunFinished,
                                   RunStarted, StepDone, StepFailed, StepSkipped, StepStarted,
                                   StepUndone, ensure_bus)
from skylift.engine.journal import Journal, JournalRun
from skylift.engine.plan import Plan, PlannedStep
from skylift.errors import (JournalMismatch, Refused, RollbackFailed, RollbackRefused,
                            StepError, error_text)

RESUME_HINT = "fix the cause and run `skylift upgrade resume`"


@dataclass
class RunResult:
    """What a run did: the steps it ran, the ones it skipped (and why), and how long it took."""

    run_id: str
    plan_id: str
    status: str
    ran: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "plan_id": self.plan_id, "status": self.status,
                "ran": self.ran, "skipped": self.skipped, "seconds": round(self.seconds, 3)}


def _check_journal(plan: Plan, state: JournalRun | None, *, resume: bool) -> None:
    if resume:
        if state is None or state.finished:
            raise JournalMismatch("there is no unfinished run to resume",
                                  why="the journal's last run " + (
                                      f"ended ({state.status})" if state else "does not exist"),
                                  next="start a new run")
        if state.plan_id != plan.id or state.fingerprint != plan.fingerprint():
            raise JournalMismatch(
                f"the unfinished run {state.run_id} was made by another plan",
                why=f"journal: {state.plan_id} ({state.fingerprint}); now: {plan.id} "
                    f"({plan.fingerprint()}) — a different skylift version or options",
                next="resume with the same skylift version and options, or roll it back")
    elif state is not None and not state.finished:
        raise JournalMismatch(f"run {state.run_id} of {state.plan_id} is unfinished "
                              f"({state.status})",
                              why="starting over could repeat or skip its steps wrongly",
                              next="resume it with `skylift upgrade resume`, or roll it back")


def run_plan(plan: Plan, ctx: Any, journal: Journal, *, events: EventBus | None = None,
             resume: bool = False, params: dict[str, Any] | None = None) -> RunResult:
    """Run the plan's steps in order, journalled; resume=True continues the journal's last run.

    `params` are recorded in the journal (no secrets: registered ones are refused). Raises
    StepError at the first failure, JournalMismatch when the journal does not fit the request.
    """
    bus = ensure_bus(events)
    state = journal.state
    _check_journal(plan, state, resume=resume)
    if journal.torn is not None:  # reported here; the next append drops it
        bus.emit(Message(f"the journal's last record was torn by a crash "
                         f"({journal.torn.size} bytes); it is dropped", level="warning"))
    if resume:
        assert state is not None
        changed = {k: v for k, v in (params or {}).items() if state.params.get(k) != v}
        journal.run_resumed(changed)
        run_id = state.run_id
    else:
        run_id = journal.start_run(plan.id, plan.fingerprint(), params)
        state = journal.state
        assert state is not None
    in_flight = state.in_flight  # the step the last process died in, if any
    result = RunResult(run_id, plan.id, "running")
    start = time.monotonic()
    steps = plan.steps()
    quiet = {s.key for s in steps if s.step.changes_nothing}
    bus.emit(RunStarted(plan.id, run_id, len(steps), [p.name for p in plan.phases],
                        resume=resume, estimate_seconds=plan.estimate_seconds(ctx)))
    try:
        for phase in plan.phases:
            phase_start = time.monotonic()
            bus.emit(PhaseStarted(phase.name, phase.description, len(phase.steps)))
            for ps in (s for s in steps if s.phase is phase):
                _run_step(ps, ctx, journal, bus, result, crashed=ps.key == in_flight,
                          quiet=quiet)
            bus.emit(PhaseFinished(phase.name, time.monotonic() - phase_start))
    except BaseException as exc:
        # Renderers close their bars on RunFinished, also when the run stops early.
        status = ("failed" if isinstance(exc, StepError) else
                  "refused" if result.status == "refused" else "interrupted")
        bus.emit(RunFinished(plan.id, run_id, status, time.monotonic() - start,
                             len(result.ran), len(result.skipped)))
        raise
    journal.run_finished("ok")
    result.status = "ok"
    result.seconds = time.monotonic() - start
    bus.emit(RunFinished(plan.id, run_id, "ok", result.seconds, len(result.ran),
                         len(result.skipped)))
    return result


def _run_step(ps: PlannedStep, ctx: Any, journal: Journal, bus: EventBus, result: RunResult,
              *, crashed: bool, quiet: set[str]) -> None:
    key, step = ps.key, ps.step
    assert journal.state is not None
    if key in journal.state.done:
        result.skipped[key] = "done (journal)"
        bus.emit(StepSkipped(key, "done (journal)"))
        return
    try:
        already = step.is_done(ctx)
    except Exception as exc:  # noqa: BLE001 - a failing probe is a failed step, journalled
        _fail(ps, journal, bus, result, f"cannot tell whether it is done: {error_text(exc)}")
    if already:
        note = "verified done after a crash" if crashed else "already done"
        journal.step_done(key, note=note)
        result.skipped[key] = note
        bus.emit(StepSkipped(key, note))
        return
    journal.step_started(key)
    bus.emit(StepStarted(key, step.description, _estimate(ps, ctx)))
    t0 = time.monotonic()
    try:
        step.run(ctx)
        # A step that declares is_done must see its own effect afterwards; if not, it is
        # broken and resuming would run it forever, so stop here and say so.
        if step.verifiable and not step.is_done(ctx):
            raise StepError(f"step {key} ran but its effect is not there", step=key)
    except Refused as exc:
        if step.changes_nothing and _nothing_changed(journal, quiet):
            _refuse(ps, journal, bus, result, exc)
        _fail(ps, journal, bus, result, error_text(exc))
    except Exception as exc:  # noqa: BLE001 - journalled, then raised as a typed error
        _fail(ps, journal, bus, result, error_text(exc))
    seconds = time.monotonic() - t0
    journal.step_done(key, seconds=seconds)
    result.ran.append(key)
    bus.emit(StepDone(key, seconds))


def _fail(ps: PlannedStep, journal: Journal, bus: EventBus, result: RunResult,
          text: str) -> NoReturn:
    text = journal.redact(text)
    journal.step_failed(ps.key, text)
    result.status = "failed"
    bus.emit(StepFailed(ps.key, text))
    raise StepError(f"step {ps.key} ({ps.step.description}) failed", step=ps.key, why=text,
                    next=RESUME_HINT)


def _nothing_changed(journal: Journal, quiet: set[str]) -> bool:
    """Whether every step done so far in this run is one of the `quiet` (change-nothing) ones."""
    assert journal.state is not None
    return set(journal.state.done) <= quiet


def _refuse(ps: PlannedStep, journal: Journal, bus: EventBus, result: RunResult,
            exc: Refused) -> NoReturn:
    text = journal.redact(error_text(exc))
    journal.step_failed(ps.key, text)
    journal.run_finished("refused")
    result.status = "refused"
    bus.emit(StepFailed(ps.key, text))
    raise exc


def _estimate(ps: PlannedStep, ctx: Any) -> float | None:
    try:
        return ps.step.estimate_seconds(ctx)
    except Exception:  # noqa: BLE001 - an estimate is advice only
        return None


def rollback(plan: Plan, ctx: Any, journal: Journal, *, events: EventBus | None = None
             ) -> list[str]:
    """Undo the journal's last run in reverse order; returns the keys undone.

    The steps undone are the done ones plus any that failed or were in flight (they may have
    left a partial effect; `undo` tolerates that). Refused (RollbackRefused) before anything is
    undone when a point-of-no-return step was started: the only way then is forward.
    """
    bus = ensure_bus(events)
    state = journal.state
    if state is None or state.status == "rolled_back":
        raise RollbackRefused("there is nothing to roll back",
                              why="the journal's last run " + (
                                  "is already rolled back" if state else "does not exist"))
    if state.plan_id != plan.id or state.fingerprint != plan.fingerprint():
        raise JournalMismatch(f"run {state.run_id} was made by another plan",
                              why=f"journal: {state.plan_id}; now: {plan.id}",
                              next="roll back with the same skylift version and options")
    touched = set(state.done) | set(state.failed)
    for key in (state.in_flight, state.undo_in_flight):
        if key:
            touched.add(key)
    order = [ps for ps in plan.steps() if ps.key in touched]
    for ps in order:
        if ps.step.point_of_no_return:
            raise RollbackRefused(
                f"cannot roll back: step {ps.key} ({ps.step.description}) is past the point "
                "of no return",
                why="its effect cannot be taken back safely once it has started",
                next="roll forward with `skylift upgrade resume`")
    journal.rollback_started()
    start = time.monotonic()
    undone = []
    for ps in reversed(order):
        journal.undo_started(ps.key)
        t0 = time.monotonic()
        try:
            ps.step.undo(ctx)
        except Exception as exc:  # noqa: BLE001 - journalled, then raised as a typed error
            text = journal.redact(error_text(exc))
            journal.undo_failed(ps.key, text)
            raise RollbackFailed(f"undoing step {ps.key} failed", why=text,
                                 next="fix the cause and run the rollback again "
                                      "(steps already undone stay undone)") from None
        note = "" if ps.step.reversible else "nothing to undo"
        journal.step_undone(ps.key, seconds=time.monotonic() - t0, note=note)
        undone.append(ps.key)
        bus.emit(StepUndone(ps.key, note))
    journal.run_finished("rolled_back")
    bus.emit(RunFinished(plan.id, state.run_id, "rolled_back", time.monotonic() - start,
                         len(undone), 0))
    return undone


# --- fan-out: one function over many items, bounded, with a failure threshold ---
