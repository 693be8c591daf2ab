"""The JSON event stream, the rich renderer on the same stream, and the run report."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from skylift.cli.progress import RichProgress, watch
from skylift.engine import (EventBus, Journal, JsonLinesSink, Phase, Plan, RunReport, check,
                            fan_out_sync, run_checks, run_plan, step)
from skylift.engine.events import Message
from skylift.errors import StepError


def plan(fail: set[str]) -> Plan:
    def act(name):
        def run(ctx):
            if name in fail:
                raise RuntimeError(f"{name} broke")
            ctx.add(name)
        return step(name, f"do {name}", run, is_done=lambda ctx: name in ctx, estimate=2)

    return Plan("demo", [Phase("prep", "prepare", [act("a"), act("b")]),
                         Phase("go", "go", [act("c")])])


def test_json_lines_stream(tmp_path):
    out = io.StringIO()
    bus = EventBus()
    bus.subscribe(JsonLinesSink(out))
    with Journal.open(tmp_path / "j") as j:
        run_plan(plan(set()), {"a"}, j, events=bus)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == [
        "run_started", "phase_started", "step_skipped", "step_started", "step_done",
        "phase_finished", "phase_started", "step_started", "step_done", "phase_finished",
        "run_finished"]
    assert events[0]["total_steps"] == 3 and events[0]["estimate_seconds"] == 6
    assert events[2] == {"event": "step_skipped", "step": "prep/a", "reason": "already done",
                         "ts": events[2]["ts"]}
    assert events[-1]["status"] == "ok" and events[-1]["ran"] == 2


def test_watch_json_goes_to_stdout_and_unsubscribes(capsys):
    bus = EventBus()
    with watch(bus, json_output=True):
        bus.emit(Message("hello"))
    bus.emit(Message("not shown"))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["text"] == "hello"


def test_rich_progress_renders_the_same_stream(tmp_path):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=120)
    bus = EventBus()
    with RichProgress(console) as renderer:
        bus.subscribe(renderer)
        run_checks([check("c1", "one")(lambda ctx: None)], None, events=bus)
        with Journal.open(tmp_path / "j") as j, pytest.raises(StepError):
            run_plan(plan({"c"}), set(), j, events=bus)
        fan_out_sync(range(5), lambda i: 1 / (i - 2), concurrency=2, events=bus, label="hosts")
        bus.emit(Message("caveat: CEPHX", level="warning"))
    text = buf.getvalue()
    assert bus.errors == []
    for piece in ("running demo", "passed", "✓ prep/a", "✗ go/c", "c broke", "hosts",
                  "(1 failed)", "5/5", "caveat: CEPHX", "demo: failed"):
        assert piece in text, piece


def test_report_from_journal_after_failure_and_resume(tmp_path):
    ctx: set[str] = set()
    with Journal.open(tmp_path / "j") as j:
        with pytest.raises(StepError):
            run_plan(plan({"b"}), ctx, j, params={"to": "4.3.12"})
        failed = RunReport.from_journal("Upgrade", plan({"b"}), j)
        assert [ln.status for ln in failed.phases["prep"]] == ["done", "failed"]
        assert failed.phases["go"][0].status == "not run"
        ctx.add("b")  # the operator fixed it by hand: resume records it done
        run_plan(plan(set()), ctx, j, resume=True)
        report = RunReport.from_journal("Upgrade", plan(set()), j)
    report.add_checks(run_checks([check("disk", "Disk", severity="warning",
                                        remedy="free space")(lambda ctx: "low")], None))
    report.add_section("Probe timeline", text="no probe lost",
                       columns=["t", "lost | dropped"], rows=[[0, 0], [1, "0|0"]],
                       data={"lost": 0})
    assert [ln.status for ln in report.phases["prep"]] == ["done", "skipped"]
    md = report.to_markdown()
    assert "# Upgrade" in md and "status: **ok** after 1 resume(s)" in md
    assert "| prep/b | skipped |" in md and "| go/c | done |" in md
    assert "**warning** Disk: low — *fix:* free space" in md
    assert "## Probe timeline" in md and "| t | lost \\| dropped |" in md and "0\\|0" in md
    data = report.to_dict()
    json.dumps(data)
    assert data["run"]["params"] == {"to": "4.3.12"} and data["checks"]["exit_code"] == 0
    assert data["sections"][0]["table"][1] == {"t": 1, "lost | dropped": "0|0"}
    md_path, json_path = report.write(tmp_path / "out")
    assert md_path.read_text() == md and json.loads(json_path.read_text())["title"] == "Upgrade"


def test_report_without_a_run():
    md = RunReport("Plan only", plan(set())).to_markdown()
    assert "| prep/a | not run |" in md
