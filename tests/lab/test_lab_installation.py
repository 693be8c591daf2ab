"""`skylift lab up/status/down` for real: a 3.7.1 cloud with process VMs whose VMs survive
kill -9 of every agent; probes tell a maintenance MN (503) from a stopped one (refused) and
see a killed VM (lost, then a new boot id); `lab down` leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from skylift.agent.client import AgentClient
from skylift.processes import pid_alive
from skylift.agent.launch import start_agent, stop_agent
from skylift.agent.store import read_json
from skylift.lab.probes import Probes, vm_targets


def cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SKYLIFT_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "skylift.cli.main", "lab", *args],
                          capture_output=True, text=True, env=env, timeout=180)


def lab_processes(lab_dir: Path) -> list[str]:
    """Processes whose command line or working files belong to this lab."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(lab_dir) in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def wait_for(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_lab_of_3_7_1_survives_agent_kills_and_goes_down_clean(skylift_home, tmp_path):
    up = cli("up", "--release", "3.7.1", "--hosts", "3", "--vms", "6", "--driver", "process",
             "--agent-port", "0", "--name", "t371", "--json", home=skylift_home)
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    lab_dir = Path(state["dir"])
    try:
        assert (lab_dir / "lab.json").stat().st_mode & 0o777 == 0o600
        assert state["mn"]["mode"] == "maintenance" and state["mn"]["release"] == "3.7.1"
        assert "password" not in state["db_url"]
        hosts = [n for n in state["nodes"] if n["kind"] == "host"]
        assert len(hosts) == 3 and all(n["address"].startswith("127.") for n in hosts)
        # every agent-backed resource has an agent: hosts, the vRouter, the Ceph primary
        # storage, the ImageStore and Ceph backup storages (LocalStorage and SharedBlock are
        # served by the hosts' agents)
        kinds = [n["kind"] for n in state["nodes"]]
        by_kind = {k: kinds.count(k) for k in ("host", "primary-storage", "backup-storage",
                                               "vrouter")}
        assert by_kind == {"host": 3, "primary-storage": 1, "backup-storage": 2, "vrouter": 1}
        assert len({n["address"] for n in state["nodes"]}) == len(state["nodes"])
        st = json.loads(cli("status", "--name", "t371", "--json", home=skylift_home).stdout)
        assert st["mn"]["mode"] == "maintenance" and st["mn"]["release"] == "3.7.1"
        assert (st["release"], st["release_from"]) == ("3.7.1", "database")
        assert st["agents_up"] == st["agents"] == by_kind
        assert st["vms"] == st["vms_answering"] == st["vms_same_boot_id"] == 6

        token = Path(state["mn"]["token_file"]).read_text().strip()
        urls = [n["url"] for n in state["nodes"]]
        probes = Probes(tmp_path / "probes", api_url=state["mn"]["url"], token=token,
                        api_interval=0.05, vms=vm_targets(urls), vm_interval=0.1,
                        agent_urls=urls, placement_interval=0.2)
        assert len(probes.vms) == 6
        probes.start()
        time.sleep(0.5)
        for n in state["nodes"]:  # kill -9 every agent: VMs belong to the hypervisor
            os.kill(read_json(Path(n["node_root"]) / "agent.json")["pid"], signal.SIGKILL)
        time.sleep(1.0)
        st = json.loads(cli("status", "--name", "t371", "--json", home=skylift_home).stdout)
        assert sum(st["agents_up"].values()) == 0 and st["vms_same_boot_id"] == 6

        # kill one VM, bring its host's agent back and start the VM again: a new boot id
        vm = state["vms"][0]
        host = next(n for n in state["nodes"] if n["uuid"] == vm["host_uuid"])
        run = read_json(Path(host["node_root"]) / "vms" / vm["uuid"] / "run.json")
        os.kill(run["pid"], signal.SIGKILL)
        wait_for(lambda: not pid_alive(run["pid"]))
        time.sleep(0.3)
        agent = start_agent(Path(host["node_root"]), "host", host=host["address"],
                            port=state["agent_port"], driver="process", os_release="c74")
        with AgentClient(agent) as c:
            c.vm_action(vm["uuid"], "start")
        time.sleep(1.0)  # the placement check finds its new endpoint, the prober its boot id
        stop_agent(agent)
        os.kill(state["mn"]["pid"], signal.SIGKILL)  # the MN gone: connections are refused
        time.sleep(0.5)
        summary = probes.stop()
    finally:
        down = cli("down", "--name", "t371", home=skylift_home)
    assert down.returncode == 0, down.stderr
    api = summary.api["api"]  # the default probe: GET /v1/zones, which maintenance answers 503
    assert api.answers_503 > 0 and api.refused > 0
    assert api.ok == 0 and api.unavailable_seconds > 1.0 and api.longest_gap_seconds > 1.0
    assert summary.vm_probes_lost >= 1
    assert summary.boot_id_changes == [vm["uuid"]]  # only the VM that was really restarted
    assert summary.started_twice == []
    timeline = [json.loads(x) for x in (tmp_path / "probes" / "timeline.jsonl").open()]
    assert {"api", "vm", "vm-round"} <= {e["kind"] for e in timeline}
    assert all({"t", "kind", "target", "result"} <= set(e) for e in timeline)
    # nothing of the lab runs any more, and down again is harmless
    wait_for(lambda: not lab_processes(lab_dir), timeout=10.0)
    assert cli("down", "--name", "t371", home=skylift_home).returncode == 0
