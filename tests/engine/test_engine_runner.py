"""The runner in process: skip/verify/run, typed failure and resume, journal checks, rollback."""

from __future__ import annotations

import pytest

from skylift.engine import EventBus, Journal, Phase, Plan, Recorder, rollback, run_plan, step
from skylift.engine.events import RunFinished, StepUndone
from skylift.errors import (JournalMismatch, RollbackFailed, RollbackRefused, SkyliftError,
                            StepError)


class World:
    """A dict of effects, a log of calls, and switches to make steps fail."""

    def __init__(self):
        self.state: dict[str, bool] = {}
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}


def effect(name: str, **kw):
    def run(w: World):
        w.calls.append(f"run {name}")
        if name in w.fail:
            raise w.fail[name]
        w.state[name] = True

    def undo(w: World):
        w.calls.append(f"undo {name}")
        if f"undo {name}" in w.fail:
            raise w.fail[f"undo {name}"]
        w.state.pop(name, None)

    return step(name, f"make {name}", run, is_done=lambda w: w.state.get(name, False),
                undo=undo, **kw)


def make_plan(ponr_on: str = "") -> Plan:
    return Plan("p", [
        Phase("one", "first", [effect("a"), effect("b")]),
        Phase("two", "second", [effect("c", point_of_no_return=ponr_on == "c"), effect("d")]),
    ])


@pytest.fixture
def journal(tmp_path):
    j = Journal.open(tmp_path / "journal.jsonl")
    yield j
    j.close()


def bus_with(rec: Recorder) -> EventBus:
    bus = EventBus()
    bus.subscribe(rec)
    return bus


def test_runs_every_step_in_order(journal):
    w, rec = World(), Recorder()
    result = run_plan(make_plan(), w, journal, events=bus_with(rec), params={"to": "4.3.12"})
    assert w.calls == ["run a", "run b", "run c", "run d"]
    assert result.status == "ok" and result.ran == ["one/a", "one/b", "two/c", "two/d"]
    assert journal.state.status == "ok" and journal.state.params == {"to": "4.3.12"}
    assert rec.kinds()[0] == "run_started" and rec.kinds()[-1] == "run_finished"
    assert rec.kinds().count("step_done") == 4 and rec.kinds().count("phase_started") == 2


def test_a_step_already_done_is_recorded_not_run(journal):
    w = World()
    w.state["b"] = True
    result = run_plan(make_plan(), w, journal)
    assert "run b" not in w.calls and result.skipped == {"one/b": "already done"}
    assert journal.state.done["one/b"]["note"] == "already done"


def test_failure_stops_with_a_typed_error_then_resume_continues(journal):
    w = World()
    w.fail["c"] = RuntimeError("disk full")
    with pytest.raises(StepError) as err:
        run_plan(make_plan(), w, journal)
    e = err.value
    assert e.step == "two/c" and "two/c" in e.what and "disk full" in e.why
    assert "skylift upgrade resume" in e.next and e.exit_code == 1
    assert journal.state.failed == {"two/c": "RuntimeError: disk full"}
    assert "run d" not in w.calls

    del w.fail["c"]
    w.calls.clear()
    result = run_plan(make_plan(), w, journal, resume=True)
    assert w.calls == ["run c", "run d"]
    assert result.skipped == {"one/a": "done (journal)", "one/b": "done (journal)"}
    assert journal.state.status == "ok" and journal.state.resumes == 1


def test_secrets_in_a_failure_are_redacted(journal):
    w = World()
    journal.register_secret("s3cret")
    w.fail["a"] = SkyliftError("login failed for root:s3cret")
    with pytest.raises(StepError) as err:
        run_plan(make_plan(), w, journal)
    assert "s3cret" not in err.value.render() and "***" in err.value.why
    assert "s3cret" not in journal.path.read_text()


def test_step_without_its_effect_after_run_fails(journal):
    lazy = step("lazy", "claims but does nothing", lambda w: None, is_done=lambda w: False)
    with pytest.raises(StepError) as err:
        run_plan(Plan("p", [Phase("x", "", [lazy])]), World(), journal)
    assert "effect is not there" in err.value.why


def test_is_done_that_raises_is_a_failed_step(journal):
    def probe(w):
        raise OSError("cannot stat")

    with pytest.raises(StepError) as err:
        run_plan(Plan("p", [Phase("x", "", [step("s", "", print, is_done=probe)])]), World(),
                 journal)
    assert "cannot tell" in err.value.why and journal.state.failed


def test_journal_must_fit_the_request(journal):
    w = World()
    with pytest.raises(JournalMismatch):
        run_plan(make_plan(), w, journal, resume=True)  # nothing to resume
    w.fail["b"] = RuntimeError("x")
    with pytest.raises(StepError):
        run_plan(make_plan(), w, journal)
    with pytest.raises(JournalMismatch) as err:
        run_plan(make_plan(), w, journal)  # a new run over an unfinished one
    assert "resume" in err.value.next
    with pytest.raises(JournalMismatch):
        run_plan(make_plan().select("two"), w, journal, resume=True)  # another plan


def test_a_phase_can_be_rerun_alone_after_a_run(journal):
    w = World()
    run_plan(make_plan(), w, journal)
    w.state.pop("c")
    w.calls.clear()
    result = run_plan(make_plan().select("two"), w, journal)
    assert w.calls == ["run c"] and result.skipped == {"two/d": "already done"}


def test_interrupt_leaves_the_step_in_flight(journal):
    w = World()
    w.fail["b"] = KeyboardInterrupt()
    rec = Recorder()
    with pytest.raises(KeyboardInterrupt):
        run_plan(make_plan(), w, journal, events=bus_with(rec))
    assert journal.state.in_flight == "one/b"
    assert rec.of(RunFinished)[0].status == "interrupted"
    del w.fail["b"]
    w.calls.clear()
    run_plan(make_plan(), w, journal, resume=True)
    assert w.calls == ["run b", "run c", "run d"]


def test_rollback_before_the_point_of_no_return(journal):
    w = World()
    w.fail["c"] = RuntimeError("x")
    with pytest.raises(StepError):
        run_plan(make_plan(ponr_on="d"), w, journal)
    w.calls.clear()
    rec = Recorder()
    undone = rollback(make_plan(ponr_on="d"), w, journal, events=bus_with(rec))
    assert undone == ["two/c", "one/b", "one/a"]  # the failed step too, in reverse
    assert w.calls == ["undo c", "undo b", "undo a"] and w.state == {}
    assert [e.step for e in rec.of(StepUndone)] == undone
    assert journal.state.status == "rolled_back"
    with pytest.raises(RollbackRefused):
        rollback(make_plan(ponr_on="d"), w, journal)
    run_plan(make_plan(ponr_on="d"), World(), journal)  # a new run may start


def test_rollback_after_the_point_of_no_return_is_refused(journal):
    w = World()
    w.fail["d"] = RuntimeError("x")
    with pytest.raises(StepError):
        run_plan(make_plan(ponr_on="c"), w, journal)
    w.calls.clear()
    with pytest.raises(RollbackRefused) as err:
        rollback(make_plan(ponr_on="c"), w, journal)
    assert "two/c" in err.value.what and "roll forward with" in err.value.next
    assert "resume" in err.value.next and err.value.exit_code == 2
    assert w.calls == [] and journal.state.status == "failed"


def test_failed_undo_is_journalled_and_rollback_can_be_rerun(journal):
    w = World()
    run_plan(make_plan(), w, journal)
    w.fail["undo b"] = RuntimeError("busy")
    with pytest.raises(RollbackFailed) as err:
        rollback(make_plan(), w, journal)
    assert "one/b" in err.value.what and "busy" in err.value.why
    assert journal.state.undone == ["two/d", "two/c"]
    del w.fail["undo b"]
    w.calls.clear()
    assert rollback(make_plan(), w, journal) == ["one/b", "one/a"]
    assert w.calls == ["undo b", "undo a"]


def test_steps_without_undo_have_nothing_to_undo(journal):
    seen = []
    plan = Plan("p", [Phase("x", "", [step("check", "look only", lambda w: seen.append(1))])])
    run_plan(plan, World(), journal)
    rec = Recorder()
    assert rollback(plan, World(), journal, events=bus_with(rec)) == ["x/check"]
    assert rec.of(StepUndone)[0].note == "nothing to undo"


def test_a_broken_subscriber_does_not_break_the_run(journal):
    bus = EventBus()

    def broken(event):
        raise RuntimeError("terminal gone")

    bus.subscribe(broken)
    assert run_plan(make_plan(), World(), journal, events=bus).status == "ok"
    assert len(bus.errors) > 0


def test_a_torn_journal_is_reported_on_resume(tmp_path):
    from skylift.engine.events import Message

    path = tmp_path / "journal.jsonl"
    w = World()
    w.fail["b"] = RuntimeError("x")
    with Journal.open(path) as j, pytest.raises(StepError):
        run_plan(make_plan(), w, j)
    with open(path, "ab") as f:
        f.write(b'{"type": "step_sta')
    del w.fail["b"]
    rec = Recorder()
    with Journal.open(path) as j:
        run_plan(make_plan(), w, j, events=bus_with(rec), resume=True)
    (msg,) = rec.of(Message)
    assert msg.level == "warning" and "torn" in msg.text
