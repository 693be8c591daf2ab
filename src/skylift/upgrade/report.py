"""The upgrade's report: the run's phases and steps (from the journal), the proof, the API's
maintenance window, and whatever was measured beside the run (Measured events: the lab's
probes, a benchmark), in Markdown and JSON in the run folder."""

from __future__ import annotations

from pathlib import Path

from skylift.engine.events import Event, Measured, Subscriber
from skylift.engine.journal import Journal
from skylift.engine.plan import Plan
from skylift.engine.report import RunReport
from skylift.files import write_json
from skylift.mn.connect_failures import describe
from skylift.upgrade.proof import agents_text
from skylift.upgrade.steps.reconnect import ACCEPTED, PENDING


def _proof_rows(proof: dict, state) -> list[list]:
    agents = proof.get("agents_checked", 0)
    behind, unreachable = proof.get("agents_behind", []), proof.get("agents_unreachable", [])
    by_kind = proof.get("agents_by_kind")
    return [
        ["verdict", proof.get("verdict", "ok" if proof.get("ok") else "not proven")],
        ["every recorded resource still there", "yes" if not proof.get("inventory_changed")
         else "no: " + ", ".join(proof["inventory_changed"])],
        ["created during the upgrade", ", ".join(f"{n} {kind}" for kind, n in sorted(
            (proof.get("inventory_added") or {}).items())) or "none"],
        ["VMs checked", proof.get("vms_checked")],
        ["VMs restarted / missing / running twice",
         f"{len(proof.get('vms_restarted', []))} / {len(proof.get('vms_missing', []))} / "
         f"{len(proof.get('vms_started_twice', []))}"],
        ["agents checked", f"{agents}: {agents_text(by_kind)}" if by_kind is not None
         else agents],
        ["agents on the new version", f"{agents - len(behind) - len(unreachable)} of {agents}"],
        ["agents behind / not answering", f"{len(behind)} / {len(unreachable)}"],
        ["pending (finished without them) / their VMs not checked",
         f"{len(proof.get('pending', []))} / {proof.get('vms_unverified', 0)}"],
        ["console assets renamed (no Ctrl+F5)", proof.get("console_assets_renamed")],
        ["VM HA back to", state.get("ha_previous")],
        ["database dump (verified)", state.get("dump")],
        ["migration rehearsed on the dump's copy", _rehearsal_text(state.get("rehearsal"))],
        ["MN processes listening on its port / live heartbeats",
         f"{_count(proof.get('mn_listeners'))} / {_count(proof.get('live_heartbeats'))}"],
    ]


def _count(found: list | None) -> str:
    return "not checked" if found is None else str(len(found))


def _rehearsal_text(rehearsal: dict | None) -> str:
    """What the rehearsal measured (or why it did not run), for the report."""
    if not rehearsal:
        return "no"
    if rehearsal.get("skipped"):
        return f"skipped: {rehearsal['skipped']}"
    if rehearsal.get("error"):
        return f"failed: {rehearsal['error']}"
    return f"{rehearsal.get('seconds', 0):.2f} s for {rehearsal.get('rows')} rows"


MEASURED = "measured"  # the run state's key: sections by title
PLAN_FILE = "plan.json"


def write_plan(plan: Plan, run_dir: Path) -> None:
    """The run's plan beside its journal (0600): every step in order, with the ones that open
    and close the API's maintenance window, so a reader of the run folder (the console's
    upgrade page, served by the MN) can show the steps still to come and the window live."""
    data = plan.to_dict()
    for phase in data["phases"]:
        for line in phase["steps"]:
            step = plan.step(line["key"]).step
            line["opens_api_window"] = bool(getattr(step, "opens_api_window", False))
            line["closes_api_window"] = bool(getattr(step, "closes_api_window", False))
    write_json(run_dir / PLAN_FILE, data, indent=1)


def collect_measured(state) -> Subscriber:
    """A subscriber keeping every Measured event of a run in its state, by title (a later one
    of the same title replaces it), so the report of a resumed run still shows them."""

    def collect(event: Event) -> None:
        if isinstance(event, Measured):
            state.set(MEASURED, {**(state.get(MEASURED) or {}),
                                 event.title: {"columns": event.columns, "rows": event.rows,
                                               "data": event.data}})

    return collect


def write_report(plan: Plan, state, run_dir: Path, journal: Journal) -> Path:
    """Write report.md and report.json into the run folder; returns the Markdown path."""
    report = RunReport.from_journal("skylift upgrade", plan, journal)
    proof = state.get("proof") or {}
    report.add_section("Proof", columns=["claim", "result"], rows=_proof_rows(proof, state),
                       data=proof or None)
    window = maintenance_window(journal, plan)
    rows = [] if window is None else [["MN API in maintenance (drain to new MN up), s",
                                       round(window, 2)]]
    opened, closed = state.get("vip_window_opened"), state.get("vip_window_closed")
    if opened and closed and closed > opened:  # an HA cloud: what users of the VIP saw
        rows = [["API in maintenance on the VIP (the VIP holder's handover to its new MN), s",
                 round(closed - opened, 2)],
                ["MNs in maintenance (the first handover to the last switch), s",
                 round(window, 2) if window is not None else None]]
    if rows:
        report.add_section("Availability", columns=["measure", "value"], rows=rows)
    pending, accepted = state.get(PENDING) or [], state.get(ACCEPTED)
    if accepted is not None or pending:
        shown = accepted if accepted is not None else pending
        title = ("Pending: finished without them (the MN upgrades each when it returns)"
                 if accepted is not None else "Pending: not converged when the run stopped")
        report.add_section(title, columns=["resource", "address", "reason", "remedy"],
                           rows=pending_rows(shown), data={"pending": shown})
    for title, section in (state.get(MEASURED) or {}).items():
        report.add_section(title, columns=section["columns"], rows=section["rows"],
                           data=section["data"])
    md, _ = report.write(run_dir)
    return md


def pending_rows(pending: list[dict]) -> list[list]:
    """One row per pending resource, grouped by reason (the remedy on each)."""
    return [[f"{i['kind']} {i['name']}", i.get("address", ""), i["reason"],
             describe(i["reason"]).remedy]
            for i in sorted(pending, key=lambda i: (i["reason"], i["kind"], i["name"]))]


def maintenance_window(journal: Journal, plan: Plan) -> float | None:
    """Seconds from the start of the step that drains the old MN to the end of the one that
    has the new MN serving (the API's 503 window); the steps say which they are."""
    opens = {ps.key for ps in plan.steps() if getattr(ps.step, "opens_api_window", False)}
    closes = {ps.key for ps in plan.steps() if getattr(ps.step, "closes_api_window", False)}
    start = end = None
    for rec in journal.run_records():
        key = rec.get("step")
        if key in opens and rec.get("type") == "step_started":
            start = start or rec.get("ts")
        if key in closes and rec.get("type") == "step_done":
            end = rec.get("ts")
    return end - start if start and end else None
