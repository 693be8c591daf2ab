"""The README's main job: `skylift demo` upgrades a lab cloud and shows nothing was lost.

Every figure the demo prints is checked against what was measured (the probes' summary, as the
run's report carries it; the proof recorded by the run; the MN's own list of agent-backed
resources), and `skylift lab status` of the kept lab reports the release its cloud is at now.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from skylift.db.engine import Database
from skylift.mn.resources import load_resources

PROBE_LINE = re.compile(r"MN API probe (\w+) \((\S+)\): (\d+) samples, (\d+) ok, (\d+) refused, "
                        r"(\d+) answered 503, (\d+) other; longest gap ([\d.]+)s")
KIND_OF = {"host": "host", "primary storage": "primary-storage",
           "backup storage": "backup-storage", "vRouter": "vrouter"}


def skylift(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skylift.cli.main", *args],
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, COLUMNS="200"))


def printed_figures(stdout: str) -> dict:
    vm = re.search(r"VM probes lost: (\d+) of (\d+); boot id changes: (\d+); "
                   r"VMs running twice: (\d+)", stdout)
    agents = re.search(r"inventory unchanged: (True|False); agents on ([\d.]+): (\d+) of (\d+) "
                       r"\(([^)]*)\); console assets renamed: (True|False|None)", stdout)
    assert vm and agents, stdout
    by_kind = {}
    for n, label in re.findall(r"(\d+) (host|primary storage|backup storage|vRouter)s?",
                               agents.group(5)):
        by_kind[KIND_OF[label]] = int(n)
    return {
        "vm_lost": int(vm.group(1)), "vm_sent": int(vm.group(2)),
        "boot_id_changes": int(vm.group(3)), "running_twice": int(vm.group(4)),
        "api": {m[0]: {"path": m[1], "samples": int(m[2]), "ok": int(m[3]),
                       "refused": int(m[4]), "answers_503": int(m[5]), "other": int(m[6]),
                       "longest_gap_seconds": float(m[7])}
                for m in PROBE_LINE.findall(stdout)},
        "inventory_unchanged": agents.group(1) == "True", "target": agents.group(2),
        "agents_on_target": int(agents.group(3)), "agents_checked": int(agents.group(4)),
        "agents_by_kind": by_kind, "console_renamed": agents.group(6) == "True",
    }


def agent_backed_resources(db_url: str) -> dict[str, int]:
    """What the MN connects to in the upgraded cloud, by kind (its own reading)."""
    eng = Database.from_string(db_url).engine()
    try:
        with eng.connect() as conn:
            resources = load_resources(conn)
    finally:
        eng.dispose()
    out: dict[str, int] = {}
    for r in resources:
        out[r.kind] = out.get(r.kind, 0) + 1
    return out


def test_demo_upgrades_a_lab_cloud_and_proves_it(skylift_home):
    out = skylift("demo", "--keep")
    try:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        shown = printed_figures(out.stdout)
        lab = json.loads((skylift_home / "lab" / "demo" / "lab.json").read_text())
        run_dir = Path(lab["mn"]["home"]) / "upgrade" / "current"
        proof = json.loads((run_dir / "state.json").read_text())["proof"]
        # the probes' figures reach the run's report (as Measured events), and match the demo's
        report = json.loads((run_dir / "report.json").read_text())
        probes = next(s["data"] for s in report["sections"]
                      if s["title"] == "Availability, as the probes saw it")
        assert probes == json.loads((Path(lab["mn"]["home"]) / "probes" / "summary.json")
                                    .read_text())
        report_md = (run_dir / "report.md").read_text()
        assert f"| VM probes sent / lost | {probes['vm_probes_sent']} / " \
               f"{probes['vm_probes_lost']} |" in report_md
        for name, api in probes["api"].items():
            assert f"| API probe {name} ({api['path']}): samples by result |" in report_md

        # what is printed is what was measured
        assert (shown["vm_lost"], shown["vm_sent"]) == (probes["vm_probes_lost"],
                                                        probes["vm_probes_sent"])
        assert shown["boot_id_changes"] == len(probes["boot_id_changes"])
        assert shown["running_twice"] == len(probes["started_twice"])
        assert set(shown["api"]) == set(probes["api"]) == {"health", "api"}
        for name, api in shown["api"].items():
            measured = probes["api"][name]
            assert {k: api[k] for k in ("path", "samples", "ok", "refused", "answers_503")} == \
                {k: measured[k] for k in ("path", "samples", "ok", "refused", "answers_503")}
            assert api["other"] == measured["samples"] - measured["ok"] - measured["refused"] \
                - measured["answers_503"]
            assert abs(api["longest_gap_seconds"] - measured["longest_gap_seconds"]) < 0.01
        assert shown["agents_checked"] == proof["agents_checked"]
        assert shown["agents_by_kind"] == {k: n for k, n in proof["agents_by_kind"].items()}

        # and what was measured shows an upgrade that lost nothing
        assert shown["vm_sent"] > 0 and shown["vm_lost"] == 0
        assert shown["boot_id_changes"] == shown["running_twice"] == 0
        health, user_call = shown["api"]["health"], shown["api"]["api"]
        assert health["refused"] == user_call["refused"] == 0
        assert health["answers_503"] == 0 and health["ok"] == health["samples"] > 0
        # the old MN (maintenance) and the handover answer users 503, then the new MN serves
        assert user_call["answers_503"] > 0 and user_call["ok"] > 0
        assert user_call["longest_gap_seconds"] > 0
        # every agent-backed resource of the cloud is in the proof: hosts, storages, vRouters
        resources = agent_backed_resources(lab["db_url"])
        assert set(resources) == {"host", "primary-storage", "backup-storage", "vrouter"}
        assert shown["agents_by_kind"] == resources
        assert shown["agents_checked"] == sum(resources.values()) == len(lab["nodes"])
        assert shown["agents_on_target"] == shown["agents_checked"]
        assert shown["target"] == "4.3.12" and shown["inventory_unchanged"]
        assert shown["console_renamed"]

        # the lab was built at 3.7.1; its cloud now reports 4.3.12
        status = skylift("lab", "status", "--name", "demo", "--json")
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        assert (st["built_release"], st["release"], st["release_from"]) == \
            ("3.7.1", "4.3.12", "database")
        assert st["agents_up"] == st["agents"] == resources
    finally:
        assert skylift("lab", "down", "--name", "demo").returncode == 0
    # the lab is down afterwards: no process of it is left
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(skylift_home) not in ps


def test_lab_status_reads_the_release_from_the_cloud_not_the_lab_record(skylift_home, tmp_path):
    """No MN answering: the database says which release the cloud is at."""
    from skylift.db.migrate import migrate
    from skylift.lab.seed import seed
    from skylift.lab.state import lab_dir, write_state

    db = Database.from_string(f"sqlite:///{tmp_path / 'cloud.db'}")
    seed(db, "3.7.1", 1, 0, os_release="c74")
    lab_dir("recorded").mkdir(parents=True, exist_ok=True)
    write_state("recorded", {"name": "recorded", "release": "3.7.1", "dir": str(tmp_path),
                             "db_url": db.display(), "nodes": [], "vms": [], "mn": None})
    first = json.loads(skylift("lab", "status", "--name", "recorded", "--json").stdout)
    migrate(db)  # what an upgrade does to the cloud; the lab's record stays at 3.7.1
    second = json.loads(skylift("lab", "status", "--name", "recorded", "--json").stdout)
    assert (first["release"], second["release"]) == ("3.7.1", "4.3.12")
    assert second["release_from"] == "database" and second["built_release"] == "3.7.1"
