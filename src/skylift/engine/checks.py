"""Preflight checks: small functions that look at a context and return findings with a remedy.

Modelled on oslo.upgradecheck and Leapp's preupgrade report. A check has an id, a title, a
default severity and a remedy; it runs against whatever context object the caller supplies
(the engine never looks inside it) and returns nothing (passed), a summary string, an `Issue`,
a `Finding`, or a list of those.

Severities: an *inhibitor* blocks the upgrade before anything changes; a *warning* is shown but
does not fail (the operator reads it and decides); *info* is a note, e.g. a caveat that applies.
So `CheckReport.exit_code` is 2 when there is any inhibitor and 0 otherwise — unlike
oslo.upgradecheck, warnings do not change the exit code, because skylift's exit code 1 means
"failed" and a warning is not a failure.

A check that raises does not crash the run: it becomes an inhibitor finding that names the
check and the error (a check that could not look cannot vouch that all is well).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable

from skylift.engine.events import CheckFinished, EventBus, ensure_bus
from skylift.errors import PlanError, error_text


class Severity(str, Enum):
    """How much a finding matters; `rank` orders them (inhibitor is the worst)."""

    INHIBITOR = "inhibitor"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "inhibitor": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    """One thing a check found: what (title, summary), how bad (severity), and the fix (remedy)."""

    check_id: str
    severity: Severity
    title: str
    summary: str
    remedy: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Leapp-style JSON: severity, title, summary, remediation (+ check id and details)."""
        return {
            "check_id": self.check_id,
            "severity": self.severity.value,
            "title": self.title,
            "summary": self.summary,
            "remediation": self.remedy,
            "details": self.details,
        }


@dataclass(frozen=True)
class Issue:
    """What a check function returns to report something; blanks take the check's defaults."""

    summary: str
    severity: Severity | None = None
    remedy: str | None = None
    title: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


CheckResult = None | str | Issue | Finding | Iterable["str | Issue | Finding"]


class Check:
    """A preflight check. Subclass and override `check(ctx)`, or use the `@check` decorator.

    Class attributes: `id` (stable, used in reports and `--skip`), `title`, `severity`
    (the default for what it finds), `remedy` (the default fix) and `gate` (the checks after
    it assume what it checks: when it finds an inhibitor they are not run, only listed).
    """

    id: str = ""
    title: str = ""
    severity: Severity = Severity.INHIBITOR
    remedy: str = ""
    gate: bool = False

    def check(self, ctx: Any) -> CheckResult:  # pragma: no cover - overridden
        """Look at ctx; return None when all is well, else summaries, Issues or Findings."""
        raise NotImplementedError

    def findings(self, ctx: Any) -> list[Finding]:
        """Run the check and normalise what it returned into Findings."""
        return [self._finding(item) for item in _as_list(self.check(ctx))]

    def _finding(self, item: str | Issue | Finding) -> Finding:
        if isinstance(item, Finding):
            return item
        if isinstance(item, str):
            item = Issue(item)
        if not isinstance(item, Issue):
            raise TypeError(f"check {self.id} returned {type(item).__name__}, "
                            "expected None, str, Issue or Finding")
        return Finding(
            check_id=self.id,
            severity=Severity(item.severity or self.severity),
            title=item.title or self.title,
            summary=item.summary,
            remedy=self.remedy if item.remedy is None else item.remedy,
            details=dict(item.details),
        )

    def __repr__(self) -> str:
        return f"<Check {self.id}>"


def _as_list(result: CheckResult) -> list:
    if result is None:
        return []
    if isinstance(result, (str, Issue, Finding)):
        return [result]
    return [r for r in result if r is not None]


class FunctionCheck(Check):
    """A check made from a plain function by the `@check` decorator."""

    def __init__(self, fn: Callable[[Any], CheckResult], *, id: str, title: str,
                 severity: Severity | str, remedy: str, gate: bool = False) -> None:
        self.fn = fn
        self.gate = gate
        self.id = id
        self.title = title
        self.severity = Severity(severity)
        self.remedy = remedy
        self.__doc__ = fn.__doc__

    def check(self, ctx: Any) -> CheckResult:
        return self.fn(ctx)


def check(id: str, title: str, *, severity: Severity | str = Severity.INHIBITOR,
          remedy: str = "", gate: bool = False
          ) -> Callable[[Callable[[Any], CheckResult]], FunctionCheck]:
    """Decorator: turn `fn(ctx) -> None | str | Issue | list` into a Check."""

    def wrap(fn: Callable[[Any], CheckResult]) -> FunctionCheck:
        return FunctionCheck(fn, id=id, title=title, severity=severity, remedy=remedy,
                             gate=gate)

    return wrap


@dataclass
class CheckOutcome:
    """One check's run: its findings (none = passed) and how long it took."""

    check_id: str
    title: str
    findings: list[Finding]
    seconds: float
    crashed: bool = False
    skipped: bool = False  # not run: a gate check before it found an inhibitor

    @property
    def status(self) -> str:
        """'passed', 'skipped', or the worst severity among its findings."""
        if self.skipped:
            return "skipped"
        if not self.findings:
            return "passed"
        return max(self.findings, key=lambda f: f.severity.rank).severity.value


@dataclass
class CheckReport:
    """All findings of a preflight run. exit_code: 2 if any inhibitor, else 0."""

    outcomes: list[CheckOutcome]

    @property
    def findings(self) -> list[Finding]:
        return [f for o in self.outcomes for f in o.findings]

    def of(self, severity: Severity | str) -> list[Finding]:
        """The findings of one severity."""
        return [f for f in self.findings if f.severity == Severity(severity)]

    @property
    def inhibitors(self) -> list[Finding]:
        return self.of(Severity.INHIBITOR)

    @property
    def warnings(self) -> list[Finding]:
        return self.of(Severity.WARNING)

    @property
    def ok(self) -> bool:
        """True when nothing inhibits the upgrade (warnings and infos are allowed)."""
        return not self.inhibitors

    @property
    def exit_code(self) -> int:
        """2 when any inhibitor was found, else 0: warnings do not fail a preflight."""
        return 0 if self.ok else 2

    def counts(self) -> dict[str, int]:
        """How many findings of each severity, and how many checks passed."""
        counts = {s.value: len(self.of(s)) for s in Severity}
        counts["passed"] = sum(1 for o in self.outcomes if o.status == "passed")
        counts["skipped"] = sum(1 for o in self.outcomes if o.skipped)
        return counts

    def to_dict(self) -> dict[str, Any]:
        """Leapp-style JSON: the verdict, counts, every check's status, and every finding."""
        return {
            "exit_code": self.exit_code,
            "inhibited": not self.ok,
            "counts": self.counts(),
            "checks": [{"id": o.check_id, "title": o.title, "status": o.status,
                        "seconds": round(o.seconds, 3)} for o in self.outcomes],
            "findings": [f.to_dict() for f in self.findings],
        }

    def render(self) -> str:
        """Plain text for people: findings worst first, each with its remedy, then a verdict."""
        lines = []
        for f in sorted(self.findings, key=lambda f: -f.severity.rank):
            lines.append(f"[{f.severity.value}] {f.title}: {f.summary}")
            if f.remedy:
                lines.append(f"    fix: {f.remedy}")
        c = self.counts()
        verdict = "blocked" if not self.ok else "ok to proceed"
        skipped = f", {c['skipped']} not run (they need what blocks)" if c["skipped"] else ""
        lines.append(f"{len(self.outcomes)} checks: {c['passed']} passed, {c['inhibitor']} "
                     f"inhibitor(s), {c['warning']} warning(s), {c['info']} note(s){skipped} "
                     f"— {verdict}")
        return "\n".join(lines)


def run_checks(checks: Iterable[Check], ctx: Any, *, events: EventBus | None = None,
               skip: Iterable[str] = (), redact: Callable[[str], str] | None = None,
               ) -> CheckReport:
    """Run every check against ctx and collect a report; never raises because a check did.

    `skip` names check ids not to run (an unknown id is a PlanError, so a typo is not silent);
    `redact` cleans error text of a crashed check before it is reported.
    """
    checks = list(checks)
    ids = [c.id for c in checks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes or "" in ids:
        raise PlanError("checks need unique, non-empty ids", why=f"repeated: {dupes or ['']}")
    unknown = sorted(set(skip) - set(ids))
    if unknown:
        raise PlanError(f"no such check: {', '.join(unknown)}", next=f"known: {', '.join(ids)}")
    bus = ensure_bus(events)
    outcomes = []
    gated = False
    for c in checks:
        if c.id in set(skip):
            continue
        if gated:
            outcomes.append(CheckOutcome(c.id, c.title, [], 0.0, skipped=True))
            bus.emit(CheckFinished(c.id, "skipped"))
            continue
        start = time.monotonic()
        crashed = False
        try:
            findings = c.findings(ctx)
        except Exception as exc:  # noqa: BLE001 - a crashing check must not crash preflight
            crashed = True
            text = error_text(exc)
            if redact:
                text = redact(text)
            findings = [Finding(
                check_id=c.id, severity=Severity.INHIBITOR,
                title=f"check {c.id} could not run",
                summary=f"the check '{c.title or c.id}' raised an error: {text}",
                remedy="fix the cause and run the checks again; if the check itself is wrong, "
                       "report it (it cannot vouch that all is well, so it blocks)",
            )]
        outcome = CheckOutcome(c.id, c.title, findings, time.monotonic() - start, crashed)
        outcomes.append(outcome)
        gated = c.gate and outcome.status == Severity.INHIBITOR.value
        bus.emit(CheckFinished(c.id, outcome.status))
    return CheckReport(outcomes)
