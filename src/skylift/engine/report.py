"""The run report, in Markdown (for people and tickets) and JSON (for tools).

It is built from the plan and the journal — not from the live event stream — so it is the
same whether the run went through in one go or was resumed three times. Check findings and any
number of caller sections (a probe timeline table, proof results, caveats) are added to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skylift.engine.checks import CheckReport
from skylift.engine.journal import Journal
from skylift.engine.plan import Plan, format_seconds
from skylift.files import PUBLIC, write_atomic, write_json


@dataclass
class StepLine:
    """One step's row in the report."""

    key: str
    description: str
    status: str  # done, skipped, failed, in flight, undone, not run
    seconds: float | None = None
    note: str = ""


@dataclass
class Section:
    """A caller's section: free Markdown text, a table, and/or data for the JSON form."""

    title: str
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    data: Any = None

    def to_markdown(self) -> str:
        out = [f"## {self.title}", ""]
        if self.text:
            out += [self.text, ""]
        if self.columns:
            out.append("| " + " | ".join(_cell(c) for c in self.columns) + " |")
            out.append("|" + "---|" * len(self.columns))
            out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in self.rows]
            out.append("")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"title": self.title}
        if self.text:
            d["text"] = self.text
        if self.columns:
            d["table"] = [dict(zip(self.columns, row)) for row in self.rows]
        if self.data is not None:
            d["data"] = self.data
        return d


def _cell(value: Any) -> str:
    # Keep the Markdown table intact whatever the value holds.
    return str(value).replace("|", "\\|").replace("\n", " ")


class RunReport:
    """A report of one run: header, phases and steps with status and timings, findings, sections."""

    def __init__(self, title: str, plan: Plan) -> None:
        self.title = title
        self.plan = plan
        self.run: dict[str, Any] = {}
        self.phases: dict[str, list[StepLine]] = {p.name: [] for p in plan.phases}
        self.checks: CheckReport | None = None
        self.sections: list[Section] = []
        for ps in plan.steps():
            self.phases[ps.phase.name].append(StepLine(ps.key, ps.step.description, "not run"))

    @classmethod
    def from_journal(cls, title: str, plan: Plan, journal: Journal) -> RunReport:
        """The report of the journal's last run, step statuses and timings taken from it."""
        report = cls(title, plan)
        state = journal.state
        if state is None:
            return report
        recs = journal.run_records()
        report.run = {"run_id": state.run_id, "plan_id": state.plan_id, "status": state.status,
                      "resumes": state.resumes, "params": state.params,
                      "started": _iso(recs[0]["ts"]), "ended": _iso(recs[-1]["ts"])}
        lines = {line.key: line for ls in report.phases.values() for line in ls}
        for rec in recs:
            line = lines.get(rec.get("step", ""))
            if line is None:
                continue
            kind = rec["type"]
            if kind == "step_started":
                line.status, line.note = "in flight", ""
            elif kind == "step_done":
                line.status = "skipped" if rec.get("note") else "done"
                line.seconds, line.note = rec.get("seconds"), rec.get("note", "")
            elif kind == "step_failed":
                line.status, line.note = "failed", rec.get("error", "")
            elif kind == "step_undone":
                line.status, line.note = "undone", rec.get("note", "")
            elif kind == "undo_failed":
                line.status, line.note = "undo failed", rec.get("error", "")
        return report

    def add_checks(self, checks: CheckReport) -> None:
        """Include the preflight findings."""
        self.checks = checks

    def add_section(self, title: str, *, text: str = "", columns: list[str] | None = None,
                    rows: list[list[Any]] | None = None, data: Any = None) -> Section:
        """Add a caller section (text and/or a table and/or JSON data); returns it."""
        section = Section(title, text, list(columns or []), [list(r) for r in rows or []], data)
        self.sections.append(section)
        return section

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "title": self.title,
            "plan": {"id": self.plan.id, "fingerprint": self.plan.fingerprint()},
            "run": self.run,
            "phases": [{"name": p.name, "description": p.description,
                        "steps": [vars(line).copy() for line in self.phases[p.name]]}
                       for p in self.plan.phases],
            "checks": self.checks.to_dict() if self.checks else None,
            "sections": [s.to_dict() for s in self.sections],
        }

    def to_markdown(self) -> str:
        """The Markdown form."""
        out = [f"# {self.title}", ""]
        if self.run:
            out += [f"- plan: `{self.plan.id}` (run `{self.run['run_id']}`)",
                    f"- status: **{self.run['status']}**"
                    + (f" after {self.run['resumes']} resume(s)" if self.run["resumes"] else ""),
                    f"- started {self.run['started']}, last record {self.run['ended']}", ""]
        if self.checks is not None:
            out += [f"## Preflight checks (exit code {self.checks.exit_code})", ""]
            if not self.checks.findings:
                out += ["All checks passed.", ""]
            for f in sorted(self.checks.findings, key=lambda f: -f.severity.rank):
                out.append(f"- **{f.severity.value}** {f.title}: {f.summary}"
                           + (f" — *fix:* {f.remedy}" if f.remedy else ""))
            out.append("")
        out += ["## Steps", ""]
        for p in self.plan.phases:
            out += [f"### {p.name} — {p.description}", "",
                    "| step | status | time | note |", "|---|---|---|---|"]
            for line in self.phases[p.name]:
                secs = format_seconds(line.seconds) if line.seconds is not None else ""
                out.append(f"| {_cell(line.key)} | {line.status} | {secs} | {_cell(line.note)} |")
            out.append("")
        out += [s.to_markdown() for s in self.sections]
        return "\n".join(out).rstrip() + "\n"

    def write(self, folder: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write <stem>.md and <stem>.json into folder (0700 if created); returns both paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        md, js = folder / f"{stem}.md", folder / f"{stem}.json"
        write_atomic(md, self.to_markdown().encode(), mode=PUBLIC)
        write_json(js, self.to_dict(), mode=PUBLIC, indent=2, default=str)
        return md, js


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
