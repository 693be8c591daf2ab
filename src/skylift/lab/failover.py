"""An MN node failing in the lab's HA cloud, and coming back, with what users would see.

    got = failover(state, out_dir)          # the VIP holder's node dies (kill -9 of all, link
                                            # down); returns the figures below
    back = rejoin(state, got["victim"])     # the node boots again and rejoins

While a node dies the lab watches from outside, as users of the cloud would:
- **writes**: a writer creates zones through the VIP, each with a name of its own, and keeps
  the names the API acknowledged (201); afterwards every one of them must be in the cloud
  (writes_lost counts those that are not);
- **the API on the VIP** (skylift.lab.probes): the longest stretch without an answer;
- **the VMs** (skylift.lab.probes): every VM's endpoint probed with its boot id — lost probes,
  boot ids that changed (a VM restarted), VMs running twice;
- **the VIP**: seconds until exactly one surviving node carries it;
- **hosts**: seconds until the surviving MNs, asked at their own addresses, drive every
  resource between them, all connected.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from skylift.lab import ha_lab
from skylift.lab.errors import LabError
from skylift.lab.probes import Probes, vm_targets
from skylift.lab.state import lab_trust, write_state
from skylift.lab.vip_lab import vip_holders, wait_for_holder
from skylift.mn.auth import read_token, token_path
from skylift.mn.https import client_verify


class ProbeWrites:
    """A thread creating zones through the VIP, one name each; keeps what was acknowledged."""

    def __init__(self, url: str, token: str, verify, tag: str, interval: float = 0.05,
                 timeout: float = 3.0) -> None:
        self.url, self.token, self.verify, self.tag = url, token, verify, tag
        self.interval, self.timeout = interval, timeout
        self.acked: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-writes", daemon=True)

    def start(self) -> "ProbeWrites":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        i = 0
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, timeout=self.timeout, verify=self.verify,
                          headers=headers, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            while not self._stop.is_set():
                i += 1
                name = f"probe-{self.tag}-{i}"
                try:
                    if c.post("/v1/zones", json={"name": name}).status_code == 201:
                        self.acked.append(name)
                    else:
                        self.failed += 1
                except httpx.HTTPError:
                    self.failed += 1
                self._stop.wait(self.interval)

    def lost(self, client: httpx.Client) -> list[str]:
        """The acknowledged names the cloud does not have."""
        have = {z["name"] for z in client.get("/v1/zones").raise_for_status().json()["items"]}
        return [n for n in self.acked if n not in have]


def _client(url: str, token: str, verify, timeout: float = 3.0) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=timeout, verify=verify,
                        headers={"Authorization": f"Bearer {token}"})


def _access(state: dict) -> tuple[str, object]:
    home = Path(state["ha"]["mns"][0]["home"])
    return read_token(token_path(home)), client_verify(state["mn"]["url"], home)


def drive_all(state: dict, names: list[str], token: str, verify) -> bool:
    """Whether the MNs named, asked at their own addresses, are the live members and drive
    every resource between them, all connected."""
    want = len(state["nodes"])
    total = connected = 0
    for m in state["ha"]["mns"]:
        if m["name"] not in names:
            continue
        try:
            with _client(m["url"], token, verify) as c:
                members = c.get("/v1/management-nodes").raise_for_status().json()["items"]
                conns = c.get("/v1/connections").raise_for_status().json()
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        if len(members) != len(names):
            return False
        total += conns["total"]
        connected += conns["connected"]
    return total == want and connected == want


def _wait(what: str, ok, timeout: float, interval: float = 0.1) -> float:
    started = time.monotonic()
    while not ok():
        if time.monotonic() - started > timeout:
            raise LabError(f"{what} did not happen within {timeout:g}s",
                           next="look at the MN logs in the lab's mn-*-home/mn/ folders")
        time.sleep(interval)
    return time.monotonic() - started


def failover(state: dict, out_dir: Path, victim: str | None = None,
             timeout: float = 90.0, settle: float = 1.0) -> dict:
    """Kill the VIP holder's node (or victim's) and measure; the figures as a dict."""
    token, verify = _access(state)
    vip_url = state["mn"]["url"]
    net, nodes = ha_lab.network(state)
    if victim is None:
        holder = ha_lab.holder(state)
        if holder is None:
            raise LabError("no MN node holds the VIP", next="run `skylift ha status`")
        victim = holder["name"]
    survivors = [m["name"] for m in state["ha"]["mns"] if m["name"] != victim]
    trust = lab_trust(state)
    hosts = [n["url"] for n in state["nodes"] if n["kind"] == "host"]
    probes = Probes(Path(out_dir), api_url=vip_url, token=token, api_verify=verify,
                    api_interval=0.05, vms=vm_targets(hosts, trust=trust), agent_urls=hosts,
                    agent_trust=trust)
    writes = ProbeWrites(vip_url, token, verify, tag=f"{victim}-{int(time.time())}")
    probes.start()
    writes.start()
    try:
        time.sleep(settle)
        t0 = time.monotonic()
        killed = ha_lab.kill_node(state, victim)
        among = [n for n in nodes if n.name != victim]
        new_holder, _ = wait_for_holder(nodes, state["ha"]["vip"], timeout=timeout,
                                        among=among, interval=0.02)
        vip_s = time.monotonic() - t0

        def api_ok() -> bool:
            try:
                with _client(vip_url, token, verify, timeout=1.0) as c:
                    return c.get("/v1/zones", params={"limit": 1}).status_code == 200
            except httpx.HTTPError:
                return False

        _wait("the API answering on the VIP", api_ok, timeout, interval=0.02)
        api_s = time.monotonic() - t0
        _wait("the surviving MNs driving every host", lambda: drive_all(
            state, survivors, token, verify), timeout, interval=0.2)
        takeover_s = time.monotonic() - t0
        time.sleep(settle)
    finally:
        writes.stop()
        summary = probes.stop()
    with _client(vip_url, token, verify, timeout=10.0) as c:
        lost = writes.lost(c)
    state["ha"].setdefault("down", []).append(victim)
    write_state(state["name"], state)
    api = next(iter(summary.api.values()))
    return {"victim": victim, "new_holder": new_holder.name, "processes_killed": len(killed),
            "vip_move_s": round(vip_s, 2), "api_back_s": round(api_s, 2),
            "api_longest_gap_s": round(api.longest_gap_seconds, 2),
            "api_refused": api.refused, "host_takeover_s": round(takeover_s, 2),
            "writes_acked": len(writes.acked), "writes_failed": writes.failed,
            "writes_lost": len(lost), "lost_names": lost[:10],
            "vm_probes_sent": summary.vm_probes_sent, "vm_probes_lost": summary.vm_probes_lost,
            "vm_restarts": len(summary.boot_id_changes),
            "vms_started_twice": len(summary.started_twice)}


def rejoin(state: dict, victim: str, agent_port: int | None = None, watch: float = 6.0,
           timeout: float = 120.0) -> dict:
    """Boot the victim's node again: it rejoins Galera, its MN takes its share of the hosts
    back, and the VIP stays where it is (watched for `watch` s after the MN is back)."""
    token, verify = _access(state)
    _, nodes = ha_lab.network(state)
    before = ha_lab.holder(state)
    t0 = time.monotonic()
    got = ha_lab.restart_node(state, victim, agent_port or state["agent_port"])
    names = [m["name"] for m in state["ha"]["mns"]]
    _wait("every MN driving its share of the hosts again",
          lambda: drive_all(state, names, token, verify), timeout, interval=0.2)
    got["hosts_back_s"] = round(time.monotonic() - t0, 2)
    holders = set()
    end = time.monotonic() + watch
    while time.monotonic() < end:
        holders.update(n.name for n in vip_holders(nodes, state["ha"]["vip"]))
        time.sleep(0.1)
    got.update(vip_before=before["name"] if before else None, vip_holders_seen=sorted(holders))
    if victim in state["ha"].get("down", []):
        state["ha"]["down"].remove(victim)
        write_state(state["name"], state)
    return got
