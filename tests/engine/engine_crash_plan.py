"""A plan of idempotent file-writing steps, run as a child process by the crash tests.

usage: python engine_crash_plan.py WORKDIR JOURNAL (run|resume|rollback)
CRASH_AT="phase/step:start|mid|end" makes the process SIGKILL itself at that point:
start = journalled started, nothing done; mid = effect applied, not journalled done;
end = journalled done, next step not started.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from skylift.engine import EventBus, Journal, Phase, Plan, rollback, run_plan, step
from skylift.engine.events import StepDone, StepStarted

CRASH_AT = os.environ.get("CRASH_AT", "")


def crash(key: str, when: str) -> None:
    if CRASH_AT == f"{key}:{when}":
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_step(phase: str, sid: str, name: str, content, **kw):
    """A step that writes file `name` with content(workdir), atomically."""
    def run(w: Path) -> None:
        atomic_write(w / name, content(w))
        crash(f"{phase}/{sid}", "mid")

    def is_done(w: Path) -> bool:
        p = w / name
        return p.exists() and p.read_text() == content(w)

    def undo(w: Path) -> None:
        (w / name).unlink(missing_ok=True)

    return step(sid, f"write {name}", run, is_done=is_done, undo=undo, **kw)


def ledger_step(phase: str, sid: str, line: str):
    """A step that appends a line to a ledger: running it twice would show as a duplicate."""
    def lines(w: Path) -> list[str]:
        p = w / "ledger.txt"
        return p.read_text().splitlines() if p.exists() else []

    def run(w: Path) -> None:
        if line not in lines(w):
            with open(w / "ledger.txt", "a") as f:
                f.write(line + "\n")
        crash(f"{phase}/{sid}", "mid")

    def undo(w: Path) -> None:
        atomic_write(w / "ledger.txt", "".join(x + "\n" for x in lines(w) if x != line))

    return step(sid, f"ledger: {line}", run, is_done=lambda w: line in lines(w), undo=undo)


def move_step(phase: str, sid: str):
    """Move incoming/x to final/x: a second naive run would fail, an idempotent one does not."""
    def run(w: Path) -> None:
        (w / "final").mkdir(exist_ok=True)
        if (w / "incoming" / "x").exists():
            os.replace(w / "incoming" / "x", w / "final" / "x")
        crash(f"{phase}/{sid}", "mid")

    def undo(w: Path) -> None:
        if (w / "final" / "x").exists():
            os.replace(w / "final" / "x", w / "incoming" / "x")

    return step(sid, "move incoming/x to final/x", run,
                is_done=lambda w: (w / "final" / "x").exists(), undo=undo)


def digest(w: Path, name: str) -> str:
    return hashlib.sha256((w / name).read_bytes()).hexdigest()


def build_plan() -> Plan:
    return Plan("crash-demo", [
        Phase("prep", "seed the work folder", [
            write_step("prep", "seed", "base.txt", lambda w: "seed\n"),
            ledger_step("prep", "ledger-a", "a"),
        ]),
        Phase("build", "derive files from each other", [
            write_step("build", "chain-1", "c1.txt", lambda w: digest(w, "base.txt") + ":1\n"),
            write_step("build", "chain-2", "c2.txt", lambda w: digest(w, "c1.txt") + ":2\n"),
            move_step("build", "move"),
        ]),
        Phase("finish", "record and stamp", [
            ledger_step("finish", "ledger-b", "b"),
            write_step("finish", "stamp", "stamp.txt", lambda w: digest(w, "c2.txt") + ":stamp\n",
                       point_of_no_return=True),
        ]),
    ])


def main() -> None:
    workdir, journal_path, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    (workdir / "incoming").mkdir(parents=True, exist_ok=True)
    if mode == "run" and not (workdir / "final" / "x").exists():
        (workdir / "incoming" / "x").write_text("payload\n")
    bus = EventBus()
    bus.subscribe(lambda e: crash(e.step, "start") if isinstance(e, StepStarted) else None)
    bus.subscribe(lambda e: crash(e.step, "end") if isinstance(e, StepDone) else None)
    plan = build_plan()
    with Journal.open(journal_path) as journal:
        if mode == "rollback":
            print(json.dumps({"undone": rollback(plan, workdir, journal)}))
            return
        result = run_plan(plan, workdir, journal, events=bus, resume=mode == "resume",
                          params={"workdir": str(workdir)})
        print(json.dumps(result.to_dict()))


if __name__ == "__main__":
    main()
