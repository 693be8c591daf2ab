"""The probes measure each API probe apart: a user's call answered 503 while the MN is drained
(health still ok), and refused connections while nothing listens on the MN port."""

from __future__ import annotations

import json
import time

import httpx

from skylift.agent.launch import free_port
from skylift.db.engine import Database
from skylift.engine.events import EventBus
from skylift.engine.journal import Journal
from skylift.engine.plan import Phase, Plan, step
from skylift.engine.runner import run_plan
from skylift.lab.demo import API_PROBES
from skylift.lab.probe_process import ProbesProcess
from skylift.lab.probes import Probes, report_when_finished
from skylift.lab.seed import seed
from skylift.mn.auth import token_path
from skylift.mn.launch import start_mn, stop_mn
from skylift.upgrade.report import collect_measured, write_report
from skylift.upgrade.run_state import RunState


def test_each_api_probe_counts_503_refused_and_its_longest_gap(tmp_path):
    db = Database.from_string(f"sqlite:///{tmp_path / 'cloud.db'}")
    seed(db, "4.3.12", 1, 2, os_release="c74")
    home, port = tmp_path / "mn-home", free_port()
    env = {"SKYLIFT_HOME": str(home)}
    url = db.url.render_as_string(hide_password=False)
    mn = start_mn(url, port=port, env=env)
    probes = None
    try:
        token = token_path(home).read_text().strip()
        probes = Probes(tmp_path / "probes", api_url=mn.url, token=token, api_paths=API_PROBES,
                        api_interval=0.05).start()
        time.sleep(0.6)
        drained_at = time.time()
        httpx.post(f"{mn.url}/v1/drain", headers={"Authorization": f"Bearer {token}"},
                   timeout=5).raise_for_status()
        drained = time.time()
        time.sleep(0.8)
        stopped_at = time.time()
        stop_mn(mn)  # nothing listens on the port until the next MN is up: refused
        stopped = time.time()
        time.sleep(0.8)
        restarting = time.time()
        mn = start_mn(url, port=port, env=env)
        up_at = time.time()
        time.sleep(0.6)
    finally:
        summary = probes.stop() if probes else None
        stop_mn(mn)  # whatever failed: no MN of this test outlives it
    api, health = summary.api["api"], summary.api["health"]
    assert api.answers_503 > 0 and api.refused > 0 and api.ok > 0
    assert health.answers_503 == 0 and health.refused > 0 and health.ok > 0
    # the user's call was out from the drain to the new MN, health only while the port was shut
    # (the new MN may answer a little before start_mn returns: bounds from sure instants)
    assert restarting - drained < api.longest_gap_seconds < up_at - drained_at + 1.0
    assert restarting - stopped < health.longest_gap_seconds < up_at - stopped_at + 0.5
    assert len(health.unavailable) == 1
    for probe in (api, health):
        assert probe.samples == probe.ok + probe.answers_503 + probe.refused + sum(
            n for r, n in probe.results.items() if r not in ("ok", "503", "refused"))
    written = json.loads((tmp_path / "probes" / "summary.json").read_text())
    assert written["api"]["api"]["answers_503"] == api.answers_503
    assert written["api"]["health"]["refused"] == health.refused
    timeline = [json.loads(x) for x in (tmp_path / "probes" / "timeline.jsonl").open()]
    assert sum(e.get("probe") == "api" and e["result"] == "503" for e in timeline) == \
        api.answers_503


def test_probes_watching_a_run_stop_when_it_ends_and_their_figures_reach_its_report(tmp_path):
    """Through the run's event bus only: the report knows nothing of the probes."""
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    probes = Probes(tmp_path / "probes", api_url=nothing_listens, api_interval=0.02).start()
    bus, state = EventBus(), RunState(tmp_path / "run")
    report_when_finished(probes, bus)
    bus.subscribe(collect_measured(state))
    plan = Plan("watched", [Phase("work", "a while",
                                  [step("wait", "wait", lambda _: time.sleep(0.3))])])
    journal = Journal.open(tmp_path / "run" / "journal.jsonl")
    try:
        run_plan(plan, None, journal, events=bus)
        assert probes.stopped  # by the run's end, before its report is written
        write_report(plan, state, tmp_path / "run", journal)
    finally:
        journal.close()
    summary = probes.summary.to_dict()
    assert summary["api"]["api"]["refused"] == summary["api"]["api"]["samples"] > 5
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    sections = {s["title"]: s for s in report["sections"]}
    assert sections["Availability, as the probes saw it"]["data"] == summary
    rows = {r["measure"]: r["value"]
            for r in sections["Availability, as the probes saw it"]["table"]}
    assert rows["API probe api: refused connections / 503 answers / longest gap s"] == \
        f"{summary['api']['api']['refused']} / 0 / {summary['api']['api']['longest_gap_seconds']}"
    (window,) = sections["API unavailable windows (probe timeline)"]["table"]
    assert window["probe"] == "api"
    assert window["answers"] == {"refused": summary["api"]["api"]["refused"]}
    assert "Availability, as the probes saw it" in (tmp_path / "run" / "report.md").read_text()


def test_probes_in_a_process_of_their_own_give_the_same_summary_and_their_cpu(tmp_path):
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    probes = ProbesProcess(tmp_path / "probes", api_url=nothing_listens,
                           api_interval=0.02).start()
    assert not probes.stopped
    time.sleep(0.5)

    summary = probes.stop()

    assert probes.stopped and probes.stop() is summary
    api = summary.api["api"]
    assert api.refused == api.samples == summary.api_samples > 5
    on_disk = json.loads((tmp_path / "probes" / "summary.json").read_text())
    assert summary.to_dict() == on_disk
    assert probes.cpu_seconds is not None and probes.cpu_seconds > 0


class _VmEndpoints:
    """VMs answering on one TCP port as a VM's endpoint does (a line of JSON with its boot
    id), recording when each probe came; down() makes them stop answering for a while."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.sock.getsockname()[1]
        self.seen: list[float] = []
        self.answering = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.seen.append(time.monotonic())
                if self.answering:
                    conn.sendall(json.dumps({"boot_id": "boot-1"}).encode() + b"\n")

    def close(self) -> None:
        self.sock.close()


def test_vm_rounds_are_spread_over_the_interval_and_the_longest_gap_is_measured(tmp_path):
    from skylift.lab.probes import VmTarget

    vms = _VmEndpoints()
    targets = [VmTarget(f"vm-{i}", f"tcp://127.0.0.1:{vms.port}", "boot-1") for i in range(40)]
    try:
        probes = Probes(tmp_path / "probes", vms=targets, vm_interval=1.0, vm_timeout=0.5,
                        concurrency=8).start()
        time.sleep(1.5)
        vms.answering = False
        silent = time.monotonic()
        time.sleep(1.2)
        vms.answering = True
        back = time.monotonic()
        time.sleep(1.5)
        summary = probes.stop()
    finally:
        vms.close()

    # the first round's 40 probes went out over most of its second, not in one burst
    first_round = vms.seen[:40]
    assert first_round[-1] - first_round[0] >= 0.7
    assert summary.vm_probes_lost > 0  # the 1.2 s the VMs were silent
    assert summary.vm_probes_sent == len(vms.seen)
    # some VM went unanswered from before the silence to after it
    assert summary.vm_longest_gap_seconds >= back - silent
    assert summary.vm_longest_gap_seconds < back - silent + 2 * 1.0 + 1.0
