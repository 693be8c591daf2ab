"""The upgrade engine: checks → plan → journal → runner → report, knowing nothing about clouds.

See docs/engine.md. The names most callers need are re-exported here.
"""

from skylift.engine.checks import (Check, CheckReport, Finding, Issue, Severity, check,
                                   run_checks)
from skylift.engine.events import EventBus, JsonLinesSink, Recorder
from skylift.engine.fan_out import FanOutResult, fan_out, fan_out_sync
from skylift.engine.journal import Journal, JournalRun
from skylift.engine.plan import Phase, Plan, Step, step
from skylift.engine.report import RunReport
from skylift.engine.runner import RunResult, rollback, run_plan

__all__ = [
    "Check", "CheckReport", "EventBus", "FanOutResult", "Finding", "Issue", "Journal",
    "JsonLinesSink", "Phase", "Plan", "Recorder", "RunReport", "RunResult", "JournalRun",
    "Severity", "Step", "check", "fan_out", "fan_out_sync", "rollback", "run_checks",
    "run_plan", "step",
]
