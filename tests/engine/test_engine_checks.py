"""Preflight checks: findings, exit codes, a raising check, the Leapp-style JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skylift.engine import Check, EventBus, Issue, Recorder, Severity, check, run_checks
from skylift.errors import PlanError, UsageError


@check("disk-space", "Free disk space", remedy="free space under /var/lib/skylift")
def disk_space(ctx):
    """Blocks when less than 10 GiB are free."""
    if ctx["free_gib"] < 10:
        return f"only {ctx['free_gib']} GiB free"


@check("cephx", "CEPHX CD-ROM hot plug", severity="info")
def cephx(ctx):
    return "CD-ROM hot plug may fail with CEPHX" if ctx.get("cephx") else None


class Peers(Check):
    id = "peers"
    title = "Peer management nodes"
    severity = Severity.WARNING
    remedy = "start the peer or remove it from the cluster"

    def check(self, ctx):
        for peer in ctx.get("down", []):
            yield Issue(f"{peer} does not answer", details={"peer": peer})
        if ctx.get("split"):
            yield Issue("two VIP holders", severity=Severity.INHIBITOR, remedy="fix keepalived")


@check("explodes", "A check with a bug")
def explodes(ctx):
    raise KeyError("qemu_version")


ALL = [disk_space, cephx, Peers()]


def test_all_pass_exit_0():
    report = run_checks(ALL, {"free_gib": 50})
    assert report.exit_code == 0 and report.ok and report.findings == []
    assert report.counts()["passed"] == 3


def test_warning_and_info_do_not_fail():
    report = run_checks(ALL, {"free_gib": 50, "cephx": True, "down": ["mn2"]})
    assert report.exit_code == 0
    assert [f.severity for f in report.findings] == [Severity.INFO, Severity.WARNING]
    warning = report.warnings[0]
    assert warning.remedy == Peers.remedy and warning.details == {"peer": "mn2"}


def test_inhibitor_exit_2_with_remedy():
    report = run_checks(ALL, {"free_gib": 3, "split": True})
    assert report.exit_code == 2 and not report.ok
    assert {f.check_id for f in report.inhibitors} == {"disk-space", "peers"}
    assert "free space" in report.render() and "blocked" in report.render()
    assert [o.status for o in report.outcomes] == ["inhibitor", "passed", "inhibitor"]


def test_a_raising_check_is_an_inhibitor_not_a_crash():
    rec = Recorder()
    bus = EventBus()
    bus.subscribe(rec)
    report = run_checks([explodes, disk_space], {"free_gib": 50}, events=bus,
                        redact=lambda t: t.replace("qemu", "q***"))
    assert report.exit_code == 2
    (finding,) = report.findings
    assert finding.check_id == "explodes" and finding.severity is Severity.INHIBITOR
    assert "explodes" in finding.title and "KeyError" in finding.summary
    assert "q***_version" in finding.summary and finding.remedy
    assert report.outcomes[0].crashed
    assert [(e.check_id, e.status) for e in rec.events] == [("explodes", "inhibitor"),
                                                           ("disk-space", "passed")]


def test_a_skylift_error_in_a_check_is_rendered():
    @check("db", "Database reachable")
    def db(ctx):
        raise UsageError("cannot connect", why="refused", next="start it")

    (finding,) = run_checks([db], None).findings
    assert "cannot connect" in finding.summary and "refused" in finding.summary


def test_to_dict_is_leapp_style_json():
    data = run_checks(ALL, {"free_gib": 1}).to_dict()
    json.dumps(data)
    assert data["exit_code"] == 2 and data["inhibited"]
    (entry,) = data["findings"]
    assert set(entry) >= {"severity", "title", "summary", "remediation"}
    assert entry == {"check_id": "disk-space", "severity": "inhibitor",
                     "title": "Free disk space", "summary": "only 1 GiB free",
                     "remediation": "free space under /var/lib/skylift", "details": {}}


def test_skip_and_unknown_ids():
    assert run_checks(ALL, {"free_gib": 1}, skip=["disk-space"]).exit_code == 0
    with pytest.raises(PlanError):
        run_checks(ALL, {}, skip=["disk-spcae"])
    with pytest.raises(PlanError):
        run_checks([disk_space, disk_space], {})


def test_bad_return_type_is_reported_as_crash():
    @check("odd", "returns a number")
    def odd(ctx):
        return 42

    report = run_checks([odd], None)
    assert report.exit_code == 2 and "TypeError" in report.findings[0].summary


@given(st.lists(st.sampled_from(list(Severity)), max_size=8))
def test_exit_code_is_2_iff_an_inhibitor(severities):
    @check("many", "many findings", severity="info")
    def many(ctx):
        return [Issue(f"n{i}", severity=s) for i, s in enumerate(severities)]

    report = run_checks([many], None)
    assert report.exit_code == (2 if Severity.INHIBITOR in severities else 0)
    assert len(report.findings) == len(severities)
