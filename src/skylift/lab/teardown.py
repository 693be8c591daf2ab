"""`skylift lab down`: stop everything a lab started (MNs, agents or the farm, VMs, the
namespaces of real nodes) and let its cut-off hosts back on the network; harmless to repeat,
and a crashed lab's namespaces are found by its block."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.launch import find_agent, stop_agent
from skylift.lab import cutoff, ns_cloud
from skylift.lab.errors import LabError
from skylift.lab.farm import find_farm, stop_farm
from skylift.lab.netns import lab_network_exists
from skylift.lab.state import block_of, read_state
from skylift.mn.launch import mn_client
from skylift.processes import pid_alive


def anything_alive(state: dict) -> bool:
    """Whether any process the lab started still runs."""
    mn = state.get("mn") or {}
    if mn.get("pid") and pid_alive(mn["pid"], "skylift.mn"):
        return True
    if state.get("ha") and lab_network_exists(
            block_of(state["name"])):
        return True
    if state.get("farm") and find_farm(Path(state["farm"]["base_dir"])):
        return True
    return any(n.get("node_root") and find_agent(Path(n["node_root"])) for n in state["nodes"])


def _stop_mns(mn: dict) -> int:
    """Stop the MN the lab started and any MN that took its port over since (an upgrade)."""
    from skylift.mn.launch import MnHandle, stop_mn

    def stop(pid: int) -> None:
        stop_mn(MnHandle(pid, "127.0.0.1", 0, mn.get("mode", ""), "", Path(mn["log"]),
                         Path(mn["home"])), timeout=20.0)

    count = 0
    if mn.get("pid") and pid_alive(mn["pid"], "skylift.mn"):
        stop(mn["pid"])
        count += 1
    for _ in range(5):  # each answer names the MN now serving the port
        try:
            with mn_client(mn["url"], None, 2.0, home=Path(mn["home"])) as client:
                pid = client.get("/v1/version").json().get("pid")
        except (httpx.HTTPError, ValueError):
            break
        if not pid or not pid_alive(pid, "skylift.mn"):
            break
        stop(pid)
        count += 1
    return count


def down(name: str) -> dict:
    """Stop the lab's MN, agents (or farm) and VMs, and let its cut-off hosts back on the
    network (skylift.lab.cutoff); running it again is harmless."""
    state = read_state(name)
    try:  # first: a cut-off agent would make the stops below wait for their timeouts
        cutoff.remove(name)
    except LabError:  # no nft here, or not allowed to use it: `down` goes on
        pass
    stopped = []
    if state is None:
        if ns_cloud.remove(name):  # a crashed lab's namespaces, found by its block
            stopped.append("namespaces")
        return {"name": name, "stopped": stopped}
    mn = state.get("mn") or {}
    if state.get("ha"):  # MNs, Galera, keepalived and sshd: all in the MN nodes, ended below
        stopped.append(f"{len(state['ha']['mns'])} MN nodes")
    elif mn and _stop_mns(mn):
        stopped.append("mn")
    if state.get("farm"):
        farm = find_farm(Path(state["farm"]["base_dir"]))
        if farm is not None:
            stop_farm(farm)
            stopped.append("farm")
    roots = [Path(n["node_root"]) for n in state["nodes"] if n.get("node_root")]

    def stop_node(root: Path) -> bool:
        agent = find_agent(root)
        if agent is not None:
            stop_agent(agent, timeout=5.0)
        kill_node_vms(root)  # VM processes, and a node's own sim daemon
        return agent is not None

    with ThreadPoolExecutor(16) as pool:
        agents = sum(pool.map(stop_node, roots))
    if agents:
        stopped.append(f"{agents} agents")
    kill_node_vms(Path(state["dir"]) / "sim")  # the shared sim hypervisor
    if ns_cloud.remove(name):  # sshd, and anything else left in the lab's namespaces
        stopped.append("namespaces")
    return {"name": name, "stopped": stopped}
