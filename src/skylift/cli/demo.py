"""`skylift demo`: a lab cloud of an old release upgraded to the newest, watched and proven."""

from __future__ import annotations

import typer

from skylift.cli.lab import lab_required
from skylift.cli.output import console, info, table
from skylift.cli.progress import RichProgress
from skylift.engine.events import EventBus
from skylift.lineage import NEWEST
from skylift.upgrade.proof import agents_text

app = typer.Typer(help="Upgrade a lab cloud end to end on the embedded database.",
                  invoke_without_command=True)


@app.callback()
def demo(
    release: str = typer.Option("3.7.1", "--release", help="Release to start from."),
    hosts: int = typer.Option(3, "--hosts"),
    vms: int = typer.Option(6, "--vms"),
    keep: bool = typer.Option(False, "--keep", help="Leave the upgraded lab running."),
) -> None:
    """Build a lab cloud (SQLite, real agents and VMs) and upgrade it, with probes and proof."""
    with lab_required():
        from skylift.lab.demo import run_demo
    bus = EventBus()
    progress = RichProgress(console)
    bus.subscribe(progress)
    with progress:
        result = run_demo(release=release, hosts=hosts, vms=vms, keep=keep, events=bus,
                          on_step=lambda msg: info(f"· {msg}"))
    before, after = result.counts_before, result.counts_after
    table(f"inventory {release} -> {NEWEST.version}", ["resource", release, NEWEST.version, ""],
          [[k, before.get(k, 0), after.get(k, 0),
            "kept" if before.get(k, 0) == after.get(k, 0) else "CHANGED"]
           for k in sorted(set(before) | set(after))])
    proof, probes = result.proof, result.probes
    info(f"upgrade {release} -> {NEWEST.version} in {result.seconds:.1f}s")
    info(f"  VM probes lost: {probes.get('vm_probes_lost')} of {probes.get('vm_probes_sent')}; "
         f"boot id changes: {len(probes.get('boot_id_changes', []))}; "
         f"VMs running twice: {len(probes.get('started_twice', []))}")
    for name, api in probes.get("api", {}).items():
        other = api["samples"] - api["ok"] - api["refused"] - api["answers_503"]
        info(f"  MN API probe {name} ({api['path']}): {api['samples']} samples, {api['ok']} ok, "
             f"{api['refused']} refused, {api['answers_503']} answered 503, {other} other; "
             f"longest gap {api['longest_gap_seconds']:.2f}s")
    agents = proof.get("agents_checked", 0)
    on_target = agents - len(proof.get("agents_behind", [])) - len(
        proof.get("agents_unreachable", []))
    info(f"  inventory unchanged: {not proof.get('inventory_changed')}; agents on "
         f"{NEWEST.version}: {on_target} of {agents} "
         f"({agents_text(proof.get('agents_by_kind', {}))}); console assets renamed: "
         f"{proof.get('console_assets_renamed')}")
    info(f"  report: {result.report}")
    ok = proof.get("ok") and probes.get("vm_probes_lost") == 0
    info("[green]nothing lost[/]" if ok else "[red]something was lost: read the report[/]")
    if not ok:
        raise typer.Exit(1)
