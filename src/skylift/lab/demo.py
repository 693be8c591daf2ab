"""The demo: a lab cloud of an old release, upgraded to the newest while it is watched.

Builds a lab (SQLite, real agent and VM processes), the new release's signed artefacts, starts
probes on the MN API and on every VM, runs the single-MN upgrade, and returns what the proof
and the probes saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skylift.db.engine import Database
from skylift.db.inventory import resource_counts
from skylift.engine.events import EventBus, ensure_bus
from skylift.lab.artefacts import build_for_upgrade
from skylift.lab.installation import LabSpec, down, up
from skylift.lab.probes import Probes, report_when_finished, vm_targets
from skylift.upgrade import single_mn
from skylift.upgrade.context import UpgradeContext
from skylift.upgrade.run_state import RunState

# Two API probes: health, served by an MN in any mode (any other answer than 200 is a real
# outage), and a call users make, which maintenance answers 503 (whether the API was up).
HEALTH_PATH = "/v1/health"
USER_CALL_PATH = "/v1/vm_instances?limit=20"  # list VMs, a page: cheap at any cloud size
API_PROBES = {"health": HEALTH_PATH, "api": USER_CALL_PATH}
PROBE_PATH = HEALTH_PATH  # the one probe of bench/upgrade_e2e.py


@dataclass
class DemoResult:
    """What the demo shows: inventory before and after, the proof, the probes, the report."""

    release: str
    counts_before: dict[str, int]
    counts_after: dict[str, int]
    proof: dict
    probes: dict
    report: Path
    seconds: float


def _counts(db: Database) -> dict[str, int]:
    eng = db.engine()
    try:
        with eng.connect() as conn:
            return resource_counts(conn)
    finally:
        eng.dispose()


def run_demo(*, release: str = "3.7.1", hosts: int = 3, vms: int = 6, name: str = "demo",
             keep: bool = False, events: EventBus | None = None, on_step=None) -> DemoResult:
    """Build the lab, upgrade it with probes running, and (unless keep) take the lab down."""
    step = on_step or (lambda msg: None)
    bus = ensure_bus(events)
    probes = None
    state = up(LabSpec(name=name, release=release, hosts=hosts, vms=vms, driver="process"),
               on_step=step)
    try:
        mn_home = Path(state["mn"]["home"])
        step("building and signing the artefacts of the new release")
        arts = build_for_upgrade(mn_home)
        ctx = UpgradeContext.on_machine(mn_home, artefacts=arts)
        before = _counts(ctx.db)
        agent_urls = [n["url"] for n in state["nodes"] if n["kind"] == "host"]
        probes = Probes(mn_home / "probes", api_url=ctx.mn_url, api_paths=API_PROBES,
                        token=ctx.mn_token, vms=vm_targets(agent_urls, trust=ctx.agent_trust),
                        agent_urls=agent_urls, agent_trust=ctx.agent_trust).start()
        report_when_finished(probes, bus)  # their figures go into the run's report
        step(f"upgrading {release} to {ctx.target.version} (probes on the API and every VM)")
        result, report = single_mn.run(ctx, incremental=False, events=bus)
        run_state = RunState(single_mn.run_dir(mn_home))
        return DemoResult(release, before, _counts(Database.from_string(
            ctx.db.url.render_as_string(hide_password=False))), run_state.get("proof", {}),
            probes.stop().to_dict(), report, result.seconds)
    finally:
        if probes is not None:
            probes.stop()  # a run refused before it started never finishes: stop them here
        if not keep:
            down(name)
