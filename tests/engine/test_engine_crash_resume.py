"""kill -9 at every step boundary, then resume: the end state equals an uninterrupted run.

Each case runs tests/engine/engine_crash_plan.py in a child process that SIGKILLs itself at one
point (a step journalled started / its effect applied but not journalled / journalled done),
then resumes it in a second child and compares the work folder with a reference run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from skylift.engine import Journal

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from engine_crash_plan import build_plan  # noqa: E402

STEP_KEYS = [ps.key for ps in build_plan().steps()]
BOUNDARIES = [(k, w) for k in STEP_KEYS for w in ("start", "mid", "end")]


def child(workdir: Path, journal: Path, mode: str, crash_at: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, CRASH_AT=crash_at)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, str(HERE / "engine_crash_plan.py"), str(workdir),
                           str(journal), mode], env=env, capture_output=True, text=True,
                          timeout=60)


def tree(folder: Path) -> dict[str, str]:
    """Every file under folder (relative path -> content), temporary files included."""
    return {str(p.relative_to(folder)): p.read_text()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("reference")
    proc = child(base / "work", base / "journal.jsonl", "run")
    assert proc.returncode == 0, proc.stderr
    return tree(base / "work")


def test_reference_run_is_complete(reference):
    assert reference["ledger.txt"] == "a\nb\n"
    assert reference["final/x"] == "payload\n"
    assert "incoming/x" not in reference and "stamp.txt" in reference


@pytest.mark.parametrize("key,when", BOUNDARIES, ids=[f"{k}:{w}" for k, w in BOUNDARIES])
def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path, reference, key, when):
    work, journal = tmp_path / "work", tmp_path / "journal.jsonl"
    crashed = child(work, journal, "run", crash_at=f"{key}:{when}")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    state = Journal.open(journal).state
    assert state is not None and state.status == "running"
    if when == "end":
        assert key in state.done and state.in_flight is None
    else:
        assert state.in_flight == key and key not in state.done

    resumed = child(work, journal, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert tree(work) == reference

    result = json.loads(resumed.stdout)
    j = Journal.open(journal)
    assert j.state.status == "ok" and list(j.state.done) == STEP_KEYS
    assert j.state.resumes == 1 and j.torn is None
    done_at_crash = STEP_KEYS[:STEP_KEYS.index(key) + (1 if when == "end" else 0)]
    assert all(result["skipped"][k] == "done (journal)" for k in done_at_crash)
    if when == "mid":  # the effect was there: re-verified, not run again
        assert result["skipped"][key] == "verified done after a crash"
    elif when == "start":  # nothing was done yet: it runs again
        assert key in result["ran"]
    assert result["ran"] == [k for k in STEP_KEYS if k not in done_at_crash and
                             not (when == "mid" and k == key)]


def test_two_crashes_in_a_row_then_resume(tmp_path, reference):
    work, journal = tmp_path / "work", tmp_path / "journal.jsonl"
    assert child(work, journal, "run", "build/chain-1:mid").returncode == -signal.SIGKILL
    assert child(work, journal, "resume", "finish/ledger-b:start").returncode == -signal.SIGKILL
    assert child(work, journal, "resume").returncode == 0
    assert tree(work) == reference
    assert Journal.open(journal).state.resumes == 2


def test_torn_journal_line_after_crash_is_tolerated(tmp_path, reference):
    work, journal = tmp_path / "work", tmp_path / "journal.jsonl"
    assert child(work, journal, "run", "build/move:start").returncode == -signal.SIGKILL
    with open(journal, "ab") as f:  # what a crash in the middle of a write leaves
        f.write(b'{"seq": 99, "type": "step_do')
    assert Journal.open(journal).torn is not None
    assert child(work, journal, "resume").returncode == 0
    assert tree(work) == reference
    j = Journal.open(journal)
    assert j.torn is None and any(r["type"] == "torn_tail_dropped" for r in j.records)


@pytest.mark.parametrize("crash_at", ["build/chain-2:mid", "build/move:end"])
def test_rollback_after_crash_restores_the_start(tmp_path, crash_at):
    work, journal = tmp_path / "work", tmp_path / "journal.jsonl"
    assert child(work, journal, "run", crash_at).returncode == -signal.SIGKILL
    proc = child(work, journal, "rollback")
    assert proc.returncode == 0, proc.stderr
    assert tree(work) == {"incoming/x": "payload\n", "ledger.txt": ""}


def test_rollback_after_point_of_no_return_is_refused(tmp_path, reference):
    work, journal = tmp_path / "work", tmp_path / "journal.jsonl"
    assert child(work, journal, "run", "finish/stamp:mid").returncode == -signal.SIGKILL
    proc = child(work, journal, "rollback")
    assert proc.returncode != 0 and "roll forward" in proc.stderr
    assert child(work, journal, "resume").returncode == 0
    assert tree(work) == reference
