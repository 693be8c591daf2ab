"""The upgrade as the console shows it, read from the run folder on this MN's machine.

An upgrade is run by `skylift upgrade` beside the MN, not by the MN: what it did lives in its
run folder (skylift.config.upgrade_run_dir) — the journal (every step's start and end, fsync'ed),
the plan (every step to come), the run's state (the preflight findings, the proof) and, once
it stops, the report. The MN only reads them, so the page works in maintenance mode and
across the MN's own replacement, and says nothing the run did not write down.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from skylift.config import upgrade_run_dir
from skylift.engine.journal import Journal
from skylift.errors import JournalError

# step_* journal records -> the status a person reads
_STATUS = {"step_started": "running", "step_done": "done", "step_failed": "failed",
           "undo_started": "undoing", "step_undone": "undone", "undo_failed": "undo failed"}
STATE_KEYS = ("checks", "proof", "ha_previous")  # what the page shows of the run's state


class _Cached:
    """A JSON file parsed again only when it changed (the run's state can be megabytes)."""

    def __init__(self) -> None:
        self.stamp: tuple[int, int] | None = None
        self.value: Any = None

    def read(self, path: Path) -> Any:
        try:
            st = path.stat()
        except FileNotFoundError:
            self.stamp, self.value = None, None
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self.stamp:
            try:
                self.value = json.loads(path.read_text())
            except (OSError, ValueError):  # replaced while read (atomic writes): next poll
                return self.value
            self.stamp = stamp
        return self.value


class UpgradeView:
    """Reads the run folder of the home it is given; one per MN process (it caches)."""

    def __init__(self, home: Path) -> None:
        self.folder = upgrade_run_dir(home)
        self._plan, self._state, self._report = _Cached(), _Cached(), _Cached()

    def read(self) -> dict:
        """The last run: status, every step (planned, running, done, failed) with its times,
        the maintenance window, preflight findings, proof and report; {"run": None} if none."""
        path = self.folder / "journal.jsonl"
        if not path.exists():
            return {"run": None}
        try:
            journal = Journal.open(path)
        except JournalError as exc:
            return {"run": None, "error": exc.to_dict()}
        journal.close()
        run = journal.state
        if run is None:
            return {"run": None}
        records = journal.run_records()
        plan = self._plan.read(self.folder / "plan.json")
        if plan is not None and plan.get("id") != run.plan_id:
            plan = None  # left by another run's procedure
        steps = _steps(plan, records)
        state = self._state.read(self.folder / "state.json") or {}
        report = self._report.read(self.folder / "report.json")
        if report is not None and (report.get("run") or {}).get("run_id") != run.run_id:
            report = None
        return {
            "run": {"run_id": run.run_id, "plan_id": run.plan_id, "status": run.status,
                    "target": run.params.get("target"), "resumes": run.resumes,
                    "started": records[0]["ts"] if records else None,
                    "updated": records[-1]["ts"] if records else None,
                    "in_flight": run.in_flight, "failed": dict(run.failed)},
            "now": time.time(),
            "phases": _phases(plan, steps),
            "window": _window(steps),
            "state": {k: state[k] for k in STATE_KEYS if k in state},
            "report": report,
        }


def _steps(plan: dict | None, records: list[dict]) -> dict[str, dict]:
    """Every step by key, in plan order, with what the journal says of it."""
    steps: dict[str, dict] = {}
    for phase in (plan or {}).get("phases", []):
        for line in phase["steps"]:
            steps[line["key"]] = {"key": line["key"], "phase": phase["name"],
                                  "description": line["description"], "status": "planned",
                                  "point_of_no_return": line.get("point_of_no_return", False),
                                  "opens_api_window": line.get("opens_api_window", False),
                                  "closes_api_window": line.get("closes_api_window", False),
                                  "estimate_seconds": line.get("estimate_seconds")}
    for rec in records:
        key, kind = rec.get("step"), rec.get("type")
        if not key or kind not in _STATUS:
            continue
        step = steps.setdefault(key, {"key": key, "phase": key.partition("/")[0],
                                      "description": "", "status": "planned"})
        step["status"] = _STATUS[kind]
        if kind == "step_started":
            step["started"], step["ended"], step["note"] = rec["ts"], None, ""
        elif kind in ("step_done", "step_undone"):
            step["ended"], step["seconds"] = rec["ts"], rec.get("seconds")
            step["note"] = rec.get("note", "")
            if kind == "step_done" and rec.get("note"):
                step["status"] = "skipped"
        elif kind in ("step_failed", "undo_failed"):
            step["ended"], step["error"] = rec["ts"], rec.get("error", "")
    return steps


def _phases(plan: dict | None, steps: dict[str, dict]) -> list[dict]:
    """The steps grouped by phase, in order, each phase with its description."""
    described = {p["name"]: p.get("description", "") for p in (plan or {}).get("phases", [])}
    out: dict[str, dict] = {}
    for step in steps.values():
        phase = out.setdefault(step["phase"], {"name": step["phase"], "steps": [],
                                               "description": described.get(step["phase"], "")})
        phase["steps"].append(step)
    return list(out.values())


def _window(steps: dict[str, dict]) -> dict:
    """The API's maintenance window as the journal saw it: opened (the drain's start) and
    closed (the new MN serving), as timestamps; closed is None while it is open."""
    opened = next((s.get("started") for s in steps.values()
                   if s.get("opens_api_window") and s.get("started")), None)
    closed = next((s.get("ended") for s in steps.values()
                   if s.get("closes_api_window") and s["status"] == "done"), None)
    return {"opened": opened, "closed": closed if opened else None}
