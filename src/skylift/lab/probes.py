"""Probes: MN API availability and every VM's continuity, sampled during any operation.

    probes = Probes(out_dir, api_url=mn.url, token=tok, vms=vm_targets(agent_urls))
    probes.start(); ...the operation...; summary = probes.stop()

Three background threads: the API sampler (GET a real API endpoint every api_interval s:
ok, 503 "upgrade in progress", refused, timeout, or another status), the VM prober (rounds of
skylift.agent.hypervisor.probe on every VM's endpoint with bounded concurrency: answered with
the same boot id, lost, or a new boot id) and, when agents are given, the placement checker
(a VM seen Running on two hosts at once was started twice; a VM started again on a new
endpoint is probed there from then on). Everything goes to a timeline of
JSON lines (t, kind, target, result); stop() writes summary.json and returns the summary.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from skylift.agent.hypervisor import probe

API_PATH = "/v1/zones"  # a real API call: maintenance mode answers it with 503


@dataclass
class VmTarget:
    """A VM to watch: where it answers and the boot id it had when watching began."""

    uuid: str
    endpoint: str
    boot_id: str
    host: str = ""


@dataclass
class Summary:
    """What the probes saw."""

    seconds: float = 0.0
    api_samples: int = 0
    api_ok: int = 0
    api_results: dict[str, int] = field(default_factory=dict)
    api_unavailable: list[dict] = field(default_factory=list)  # {start, end, seconds, results}
    api_unavailable_seconds: float = 0.0
    vm_rounds: int = 0
    vm_probes_sent: int = 0
    vm_probes_lost: int = 0
    boot_id_changes: list[str] = field(default_factory=list)
    started_twice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def vm_targets(agent_urls: list[str], token: str | None = None,
               timeout: float = 10.0) -> list[VmTarget]:
    """Every Running VM of these agents, with its endpoint and current boot id."""
    headers = {"X-Skylift-Token": token} if token else {}
    out = []
    with httpx.Client(timeout=timeout, headers=headers) as http:
        for url in agent_urls:
            for vm in http.get(f"{url}/v1/vms").raise_for_status().json():
                if vm["state"] == "Running" and vm.get("endpoint"):
                    out.append(VmTarget(vm["uuid"], vm["endpoint"], vm["boot_id"], url))
    return out


class Probes:
    """Background samplers writing one timeline; start() then stop()."""

    def __init__(self, out_dir: Path, *, api_url: str | None = None, api_path: str = API_PATH,
                 token: str | None = None, api_interval: float = 0.1, api_timeout: float = 2.0,
                 vms: list[VmTarget] = (), vm_interval: float = 0.5, vm_timeout: float = 1.0,
                 concurrency: int = 64, agent_urls: list[str] = (), agent_token: str | None = None,
                 placement_interval: float = 2.0) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.timeline_path = self.out_dir / "timeline.jsonl"
        self.api_url, self.api_path, self.token = api_url, api_path, token
        self.api_interval, self.api_timeout = api_interval, api_timeout
        self.vms = list(vms)
        self.vm_interval, self.vm_timeout, self.concurrency = vm_interval, vm_timeout, concurrency
        self.agent_urls, self.agent_token = list(agent_urls), agent_token
        self.placement_interval = placement_interval
        self.summary = Summary()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._fh = None
        self._down_since: float | None = None
        self._down_results: dict[str, int] = {}
        self._started = 0.0

    # --- timeline ----------------------------------------------------------------------------
    def _record(self, kind: str, target: str, result: str, **extra) -> None:
        line = json.dumps({"t": round(time.time(), 4), "kind": kind, "target": target,
                           "result": result, **extra})
        with self._lock:
            self._fh.write(line + "\n")

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Probes":
        """Start sampling in background threads."""
        self._fh = open(self.timeline_path, "a", buffering=1)
        self._started = time.monotonic()
        loops = []
        if self.api_url:
            loops.append(self._api_loop)
        if self.vms:
            loops.append(self._vm_loop)
        if self.agent_urls:
            loops.append(self._placement_loop)
        for loop in loops:
            t = threading.Thread(target=loop, name=f"probe-{loop.__name__}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> Summary:
        """Stop sampling; write summary.json; the summary."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()
        s = self.summary
        if self._down_since is not None:
            self._close_window(time.time())
        s.seconds = round(time.monotonic() - self._started, 3)
        s.api_unavailable_seconds = round(sum(w["seconds"] for w in s.api_unavailable), 3)
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        (self.out_dir / "summary.json").write_text(json.dumps(s.to_dict(), indent=2) + "\n")
        return s

    def __enter__(self) -> "Probes":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the API -----------------------------------------------------------------------------
    def api_sample(self, http: httpx.Client) -> str:
        """One GET of the API: ok, 503, refused, timeout, or http-<status> / error."""
        try:
            resp = http.get(self.api_url + self.api_path)
        except httpx.ConnectError:
            return "refused"
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError as exc:
            return f"error:{type(exc).__name__}"
        if resp.status_code < 400:
            return "ok"
        return "503" if resp.status_code == 503 else f"http-{resp.status_code}"

    def _api_loop(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        # a new connection per sample: a kept-alive one would hide a listener that went away
        with httpx.Client(timeout=self.api_timeout, headers=headers,
                          limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not self._stop.is_set():
                began = time.time()
                result = self.api_sample(http)
                s = self.summary
                s.api_samples += 1
                s.api_results[result] = s.api_results.get(result, 0) + 1
                if result == "ok":
                    s.api_ok += 1
                    if self._down_since is not None:
                        self._close_window(began)
                elif self._down_since is None:
                    self._down_since, self._down_results = began, {}
                if result != "ok":
                    self._down_results[result] = self._down_results.get(result, 0) + 1
                self._record("api", self.api_url + self.api_path, result)
                self._stop.wait(max(0.0, self.api_interval - (time.time() - began)))

    def _close_window(self, end: float) -> None:
        self.summary.api_unavailable.append({
            "start": round(self._down_since, 3), "end": round(end, 3),
            "seconds": round(end - self._down_since, 3), "results": self._down_results})
        self._down_since = None

    # --- the VMs -----------------------------------------------------------------------------
    def _vm_loop(self) -> None:
        s = self.summary
        changed: set[str] = set()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="probe-vm") as pool:
            while not self._stop.is_set():
                began = time.time()
                answers = list(pool.map(lambda vm: probe(vm.endpoint, self.vm_timeout), self.vms))
                lost = 0
                for vm, boot_id in zip(self.vms, answers):
                    s.vm_probes_sent += 1
                    if boot_id is None:
                        lost += 1
                        s.vm_probes_lost += 1
                        self._record("vm", vm.uuid, "lost", host=vm.host)
                    elif boot_id != vm.boot_id:
                        self._record("vm", vm.uuid, "boot-id-changed", host=vm.host,
                                     was=vm.boot_id, now=boot_id)
                        if vm.uuid not in changed:
                            changed.add(vm.uuid)
                            s.boot_id_changes.append(vm.uuid)
                s.vm_rounds += 1
                self._record("vm-round", f"{len(self.vms)} VMs", "ok" if not lost else "lost",
                             lost=lost, seconds=round(time.time() - began, 3))
                self._stop.wait(max(0.0, self.vm_interval - (time.time() - began)))

    def _placement_loop(self) -> None:
        headers = {"X-Skylift-Token": self.agent_token} if self.agent_token else {}
        twice: set[str] = set()

        targets = {vm.uuid: vm for vm in self.vms}

        def running(http: httpx.Client, url: str) -> list[dict]:
            try:
                return [vm for vm in http.get(f"{url}/v1/vms").json()
                        if vm.get("state") == "Running"]
            except (httpx.HTTPError, ValueError):
                return []  # an agent restarting now: its VMs are seen next round

        with httpx.Client(timeout=5.0, headers=headers) as http, \
                ThreadPoolExecutor(min(self.concurrency, 16)) as pool:
            while not self._stop.is_set():
                began = time.time()
                where: dict[str, list[str]] = {}
                for url, vms in zip(self.agent_urls,
                                    pool.map(lambda u: running(http, u), self.agent_urls)):
                    for vm in vms:
                        where.setdefault(vm["uuid"], []).append(url)
                        target = targets.get(vm["uuid"])
                        if target is not None and vm.get("endpoint") not in (None, target.endpoint):
                            # started again elsewhere (another port or host): probe it there,
                            # still against the boot id it had when watching began
                            self._record("placement", vm["uuid"], "moved", host=url,
                                         endpoint=vm["endpoint"])
                            target.endpoint, target.host = vm["endpoint"], url
                for uuid, urls in where.items():
                    if len(urls) > 1 and uuid not in twice:
                        twice.add(uuid)
                        self.summary.started_twice.append(uuid)
                        self._record("placement", uuid, "started-twice", hosts=urls)
                self._stop.wait(max(0.0, self.placement_interval - (time.time() - began)))
