"""The upgrade report counts every agent the proof read, by kind, from the proof's figures."""

from __future__ import annotations

import json
import re

from skylift.engine.journal import Journal
from skylift.upgrade import single_mn
from skylift.upgrade.cloud_view import AgentView, CloudView
from skylift.upgrade.proof import prove
from skylift.upgrade.report import write_report


def test_the_report_counts_agents_of_every_kind(tmp_path):
    agents = [AgentView(f"h{i}", f"host-{i}", "", "4.3.12") for i in range(3)]
    agents += [AgentView("ps", "ceph-ps", "", "3.7.1", kind="primary-storage"),
               AgentView("bs1", "imagestore", "", "4.3.12", kind="backup-storage"),
               AgentView("bs2", "ceph-bs", "", error="ConnectError", kind="backup-storage"),
               AgentView("vr", "vr-0", "", "4.3.12", kind="vrouter")]
    proof = prove({}, {}, CloudView({}), CloudView({a.uuid: a for a in agents}), "4.3.12")
    journal = Journal.open(tmp_path / "journal.jsonl")
    try:
        write_report(single_mn.build_plan(False), {"proof": proof.to_dict()}, tmp_path, journal)
    finally:
        journal.close()
    report = json.loads((tmp_path / "report.json").read_text())
    section = next(s for s in report["sections"] if s["title"] == "Proof")
    rows = {r["claim"]: str(r["result"]) for r in section["table"]}
    counted = {kind: int(n) for n, kind in re.findall(
        r"(\d+) (hosts?|primary storages?|backup storages?|vRouters?)", rows["agents checked"])}
    assert counted == {"hosts": 3, "primary storage": 1, "backup storages": 2, "vRouter": 1}
    assert rows["agents checked"].startswith("7:")
    assert rows["agents on the new version"] == "5 of 7"
    assert rows["agents behind / not answering"] == "1 / 1"
    assert section["data"]["agents_by_kind"] == {"host": 3, "primary-storage": 1,
                                                 "backup-storage": 2, "vrouter": 1}


def test_the_report_shows_the_rehearsal_and_the_mns_serving(tmp_path):
    proof = prove({}, {}, CloudView({}), CloudView({}), "4.3.12")
    proof.mn_listeners, proof.live_heartbeats = [4242], ["mn (pid 4242, running, now)"]
    state = {"proof": proof.to_dict(),
             "rehearsal": {"seconds": 1.234, "rows": 313, "skipped": None, "error": None}}
    journal = Journal.open(tmp_path / "journal.jsonl")
    try:
        write_report(single_mn.build_plan(False), state, tmp_path, journal)
    finally:
        journal.close()
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {r["claim"]: str(r["result"]) for r in next(
        s for s in report["sections"] if s["title"] == "Proof")["table"]}
    assert rows["migration rehearsed on the dump's copy"] == "1.23 s for 313 rows"
    assert rows["MN processes listening on its port / live heartbeats"] == "1 / 1"
