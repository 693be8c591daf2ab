"""What the console's upgrade page reads (skylift.mn.upgrade_view), from a run folder written
by the real engine: the plan written beside the journal, steps as they start, end and fail,
the API's window from the steps that open and close it, and a resumed run."""

from __future__ import annotations

import time

import pytest

from skylift.config import upgrade_run_dir
from skylift.engine.journal import Journal
from skylift.engine.plan import Phase, Plan, Step
from skylift.engine.runner import run_plan
from skylift.errors import StepError
from skylift.mn.upgrade_view import UpgradeView
from skylift.upgrade.report import write_plan


class Pause(Step):
    """A step that takes a little time (and fails while `fail` holds its key)."""

    def __init__(self, id: str, seconds: float = 0.02, **marks) -> None:
        self.id, self.description, self.seconds = id, f"pause {id}", seconds
        for name, value in marks.items():
            setattr(self, name, value)

    def run(self, ctx) -> None:
        time.sleep(self.seconds)
        if self.id in ctx["fail"]:
            raise RuntimeError(f"{self.id} broke")


def plan() -> Plan:
    return Plan("upgrade-test", [
        Phase("protect", "record the cloud", [Pause("dump")]),
        Phase("management-node", "swap the MN", [
            Pause("drain", opens_api_window=True), Pause("migrate", point_of_no_return=True),
            Pause("start-new", closes_api_window=True)]),
        Phase("verify", "prove it", [Pause("proof")]),
    ])


def run(home, ctx, *, resume=False):
    folder = upgrade_run_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    p = plan()
    write_plan(p, folder)
    with Journal.open(folder / "journal.jsonl") as journal:
        return run_plan(p, ctx, journal, resume=resume, params={"target": "9.9.9"})


def steps_of(view: dict) -> dict[str, dict]:
    return {s["key"]: s for phase in view["phases"] for s in phase["steps"]}


def test_no_run_folder_is_no_run(tmp_path):
    assert UpgradeView(tmp_path).read() == {"run": None}


def test_a_failed_run_then_its_resume_as_the_page_reads_them(tmp_path):
    ctx = {"fail": {"start-new"}}
    with pytest.raises(StepError):
        run(tmp_path, ctx)
    view = UpgradeView(tmp_path)
    failed = view.read()
    assert failed["run"]["status"] == "failed" and failed["run"]["target"] == "9.9.9"
    assert [p["name"] for p in failed["phases"]] == ["protect", "management-node", "verify"]
    steps = steps_of(failed)
    assert [s["status"] for s in steps.values()] == ["done", "done", "done", "failed", "planned"]
    assert "start-new broke" in steps["management-node/start-new"]["error"]
    assert steps["management-node/migrate"]["point_of_no_return"] is True
    assert steps["protect/dump"]["seconds"] >= 0.02
    # the window opened with the drain and has not closed: the new MN never served
    assert failed["window"]["opened"] == steps["management-node/drain"]["started"]
    assert failed["window"]["closed"] is None

    ctx["fail"].clear()
    run(tmp_path, ctx, resume=True)
    done = view.read()
    steps = steps_of(done)
    assert done["run"]["status"] == "ok" and done["run"]["resumes"] == 1
    assert all(s["status"] == "done" for s in steps.values())
    window = done["window"]
    assert window["closed"] == steps["management-node/start-new"]["ended"]
    assert window["closed"] - window["opened"] >= 0.06  # drain, migrate, start-new


def test_a_plan_left_by_another_procedure_is_not_used(tmp_path):
    run(tmp_path, {"fail": set()})
    folder = upgrade_run_dir(tmp_path)
    other = Plan("another-procedure", [Phase("x", "", [Pause("y")])])
    write_plan(other, folder)
    view = UpgradeView(tmp_path).read()
    # the steps come from the journal alone (no descriptions), never from the other plan
    assert "x/y" not in steps_of(view)
    assert len(steps_of(view)) == 5 and view["run"]["status"] == "ok"
