"""Probes: MN API availability and every VM's continuity, sampled during any operation.

    probes = Probes(out_dir, api_url=mn.url, token=tok, vms=vm_targets(agent_urls))
    probes.start(); ...the operation...; summary = probes.stop()

Background threads: one API sampler per API probe (GET an MN path every api_interval s on a
new connection: ok, 503 "upgrade in progress", refused, timeout, or another status; e.g. the
health call beside a user's call, which maintenance answers 503), the VM prober (rounds of
skylift.agent.hypervisor.probe on every VM's endpoint, each round spread over vm_interval
seconds, with bounded concurrency: answered with the same boot id, lost, or a new boot id; the
longest time a VM went without an answer is the resolution of "none lost") and, when agents
are given, the placement checker
(a VM seen Running on two hosts at once was started twice; a VM started again on a new
endpoint is probed there from then on). Everything goes to a timeline of JSON lines (t, kind,
target, result); stop() writes summary.json and returns the summary: per API probe the answers
by result, refused connections, 503 answers and the longest stretch without an ok answer.

Watching a run: report_when_finished(probes, bus) stops the probes when the run on the bus
finishes and emits their figures as Measured events, which the run's report collects.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from skylift.agent.client import AgentClient
from skylift.agent.hypervisor import probe
from skylift.engine.events import Event, EventBus, Measured, RunFinished
from skylift.errors import SkyliftError
from skylift.pki.trust import AgentTrust

API_PATH = "/v1/zones"  # a real API call: maintenance mode answers it with 503
VM_TICK_SECONDS = 0.05  # a round's probes go out in slices this far apart


@dataclass
class VmTarget:
    """A VM to watch: where it answers and the boot id it had when watching began."""

    uuid: str
    endpoint: str
    boot_id: str
    host: str = ""


@dataclass
class ApiSummary:
    """What one API probe saw."""

    path: str
    samples: int = 0
    ok: int = 0
    refused: int = 0
    answers_503: int = 0
    timeouts: int = 0
    results: dict[str, int] = field(default_factory=dict)
    unavailable: list[dict] = field(default_factory=list)  # {start, end, seconds, results}
    unavailable_seconds: float = 0.0
    longest_gap_seconds: float = 0.0  # the longest stretch without an ok answer

    def count(self, result: str) -> None:
        self.samples += 1
        self.results[result] = self.results.get(result, 0) + 1
        self.ok += result == "ok"
        self.refused += result == "refused"
        self.answers_503 += result == "503"
        self.timeouts += result == "timeout"


@dataclass
class Summary:
    """What the probes saw."""

    seconds: float = 0.0
    api: dict[str, ApiSummary] = field(default_factory=dict)  # by probe name
    # the first API probe's figures again, for callers that watch one endpoint
    api_samples: int = 0
    api_ok: int = 0
    api_results: dict[str, int] = field(default_factory=dict)
    api_unavailable: list[dict] = field(default_factory=list)
    api_unavailable_seconds: float = 0.0
    vm_rounds: int = 0
    vm_probes_sent: int = 0
    vm_probes_lost: int = 0
    # the longest time any VM went without an answer: the resolution "0 lost" was measured at
    vm_longest_gap_seconds: float = 0.0
    boot_id_changes: list[str] = field(default_factory=list)
    started_twice: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Summary":
        """The summary to_dict (or summary.json) holds."""
        api = {name: ApiSummary(**a) for name, a in (data.get("api") or {}).items()}
        return cls(**{**data, "api": api})


def vm_targets(agent_urls: list[str], token: str | None = None,
               timeout: float = 10.0, trust: AgentTrust | None = None) -> list[VmTarget]:
    """Every Running VM of these agents, with its endpoint and current boot id."""
    out = []
    for url in agent_urls:
        with AgentClient(url, token, timeout, trust=trust) as agent:
            for vm in agent.list_vms():
                if vm["state"] == "Running" and vm.get("endpoint"):
                    out.append(VmTarget(vm["uuid"], vm["endpoint"], vm["boot_id"], url))
    return out


class Probes:
    """Background samplers writing one timeline; start() then stop()."""

    def __init__(self, out_dir: Path, *, api_url: str | None = None, api_path: str = API_PATH,
                 api_paths: dict[str, str] | None = None, token: str | None = None,
                 api_interval: float = 0.1, api_timeout: float = 2.0,
                 vms: list[VmTarget] = (), vm_interval: float = 0.5, vm_timeout: float = 1.0,
                 concurrency: int = 64, agent_urls: list[str] = (), agent_token: str | None = None,
                 placement_interval: float = 2.0, agent_trust: AgentTrust | None = None,
                 api_verify=True) -> None:
        """agent_trust: the cloud's CA, to read agents that speak TLS (as the MN does);
        api_verify: how the API's HTTPS is checked (skylift.mn.https.client_verify)."""
        self.api_verify = api_verify
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.timeline_path = self.out_dir / "timeline.jsonl"
        self.api_url, self.token = api_url, token
        self.api_paths = dict(api_paths or {"api": api_path})  # probe name -> path
        self.api_interval, self.api_timeout = api_interval, api_timeout
        self.vms = list(vms)
        self.vm_interval, self.vm_timeout, self.concurrency = vm_interval, vm_timeout, concurrency
        self.agent_urls, self.agent_token = list(agent_urls), agent_token
        self.agent_trust = agent_trust
        self.placement_interval = placement_interval
        self.summary = Summary(api={name: ApiSummary(path)
                                    for name, path in self.api_paths.items()} if api_url else {})
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._fh = None
        self._down: dict[str, tuple[float, dict[str, int]]] = {}  # probe -> (since, results)
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
        loops = [(f"api-{name}", lambda n=name: self._api_loop(n)) for name in self.summary.api]
        if self.vms:
            loops.append(("vms", self._vm_loop))
        if self.agent_urls:
            loops.append(("placement", self._placement_loop))
        for name, loop in loops:
            t = threading.Thread(target=loop, name=f"probe-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> Summary:
        """Stop sampling; write summary.json; the summary (the same one if already stopped)."""
        if self.stopped:
            return self.summary
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()
        s = self.summary
        now = time.time()
        for name in list(self._down):  # still down when watching ended: the gap ends here
            self._close_window(name, now)
        s.seconds = round(time.monotonic() - self._started, 3)
        for api in s.api.values():
            api.unavailable_seconds = round(sum(w["seconds"] for w in api.unavailable), 3)
            api.longest_gap_seconds = max((w["seconds"] for w in api.unavailable), default=0.0)
        first = next(iter(s.api.values()), None)
        if first is not None:
            s.api_samples, s.api_ok, s.api_results = first.samples, first.ok, first.results
            s.api_unavailable = first.unavailable
            s.api_unavailable_seconds = first.unavailable_seconds
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
    def api_sample(self, http: httpx.Client, path: str) -> str:
        """One GET of the API: ok, 503, refused, timeout, or http-<status> / error."""
        try:
            resp = http.get(self.api_url + path)
        except httpx.ConnectError:
            return "refused"
        except httpx.TimeoutException:
            return "timeout"
        except httpx.HTTPError as exc:
            return f"error:{type(exc).__name__}"
        if resp.status_code < 400:
            return "ok"
        return "503" if resp.status_code == 503 else f"http-{resp.status_code}"

    def _api_loop(self, name: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        api = self.summary.api[name]
        # a new connection per sample: a kept-alive one would hide a listener that went away
        with httpx.Client(timeout=self.api_timeout, headers=headers, verify=self.api_verify,
                          limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not self._stop.is_set():
                began = time.time()
                result = self.api_sample(http, api.path)
                api.count(result)
                if result == "ok":
                    if name in self._down:
                        self._close_window(name, began)
                else:
                    self._down.setdefault(name, (began, {}))
                    results = self._down[name][1]
                    results[result] = results.get(result, 0) + 1
                self._record("api", self.api_url + api.path, result, probe=name)
                self._stop.wait(max(0.0, self.api_interval - (time.time() - began)))

    def _close_window(self, name: str, end: float) -> None:
        since, results = self._down.pop(name)
        self.summary.api[name].unavailable.append({
            "start": round(since, 3), "end": round(end, 3), "seconds": round(end - since, 3),
            "results": results})

    # --- the VMs -----------------------------------------------------------------------------
    def _vm_loop(self) -> None:
        """Rounds over every VM, each round's probes spread evenly over vm_interval seconds.

        Paced, not as fast as the machine allows: a prober that takes every free cycle makes
        whatever it watches look slower the faster that gets (CPU freed by the watched work
        goes to more probes). A round that cannot keep the pace runs as fast as it can."""
        s = self.summary
        changed: set[str] = set()
        last_answer = {vm.uuid: time.time() for vm in self.vms}  # watching began: a gap opens
        ticks = max(1, min(len(self.vms), round(self.vm_interval / VM_TICK_SECONDS)))
        size = -(-len(self.vms) // ticks)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="probe-vm") as pool:
            while not self._stop.is_set():
                began = time.time()
                lost = sent = 0
                for i in range(0, len(self.vms), size):
                    chunk = self.vms[i:i + size]
                    answers = pool.map(lambda vm: probe(vm.endpoint, self.vm_timeout), chunk)
                    for vm, boot_id in zip(chunk, answers):
                        sent += 1
                        lost += not self._vm_answered(vm, boot_id, last_answer, changed)
                    due = began + self.vm_interval * (i + len(chunk)) / len(self.vms)
                    if self._stop.wait(max(0.0, due - time.time())):
                        break
                s.vm_rounds += 1
                self._record("vm-round", f"{sent} VMs", "ok" if not lost else "lost",
                             lost=lost, seconds=round(time.time() - began, 3))
        end = time.time()  # a VM unanswered since its last answer: its gap runs to the end
        s.vm_longest_gap_seconds = max([s.vm_longest_gap_seconds]
                                       + [round(end - t, 3) for t in last_answer.values()])

    def _vm_answered(self, vm: VmTarget, boot_id: str | None, last_answer: dict[str, float],
                     changed: set[str]) -> bool:
        """Count one probe of vm and record what it found; whether the VM answered."""
        s = self.summary
        s.vm_probes_sent += 1
        if boot_id is None:
            s.vm_probes_lost += 1
            self._record("vm", vm.uuid, "lost", host=vm.host)
            return False
        now = time.time()
        s.vm_longest_gap_seconds = max(s.vm_longest_gap_seconds,
                                       round(now - last_answer[vm.uuid], 3))
        last_answer[vm.uuid] = now
        if boot_id != vm.boot_id:
            self._record("vm", vm.uuid, "boot-id-changed", host=vm.host, was=vm.boot_id,
                         now=boot_id)
            if vm.uuid not in changed:
                changed.add(vm.uuid)
                s.boot_id_changes.append(vm.uuid)
        return True

    def _placement_loop(self) -> None:
        twice: set[str] = set()

        targets = {vm.uuid: vm for vm in self.vms}
        # one client per agent: each learns (and keeps) whether its agent speaks TLS yet
        agents = {url: AgentClient(url, self.agent_token, 5.0, trust=self.agent_trust)
                  for url in self.agent_urls}

        def running(url: str) -> list[dict]:
            try:
                return [vm for vm in agents[url].list_vms() if vm.get("state") == "Running"]
            except (SkyliftError, ValueError):
                return []  # an agent restarting now: its VMs are seen next round

        with ThreadPoolExecutor(min(self.concurrency, 16)) as pool:
            while not self._stop.is_set():
                began = time.time()
                where: dict[str, list[str]] = {}
                for url, vms in zip(self.agent_urls, pool.map(running, self.agent_urls)):
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
        for agent in agents.values():
            agent.close()


def measured(summary: Summary) -> list[Measured]:
    """The probes' figures as sections of a run's report: each API probe and the VMs, then
    the windows in which an API probe had no ok answer."""
    rows = []
    for name, api in summary.api.items():
        rows += [[f"API probe {name} ({api.path}): samples by result", api.results],
                 [f"API probe {name}: refused connections / 503 answers / longest gap s",
                  f"{api.refused} / {api.answers_503} / {api.longest_gap_seconds}"]]
    rows += [["VM probes sent / lost", f"{summary.vm_probes_sent} / {summary.vm_probes_lost}"],
             ["VM longest time without an answer s", summary.vm_longest_gap_seconds],
             ["VM boot id changes", len(summary.boot_id_changes)],
             ["VMs seen running twice", len(summary.started_twice)]]
    out = [Measured("Availability, as the probes saw it", ["measure", "value"], rows,
                    data=summary.to_dict())]
    windows = [[name, w["start"], w["seconds"], w["results"]]
               for name, api in summary.api.items() for w in api.unavailable]
    if windows:
        out.append(Measured("API unavailable windows (probe timeline)",
                            ["probe", "start", "seconds", "answers"], windows))
    return out


def report_when_finished(probes: Probes, events: EventBus) -> Callable[[], None]:
    """Stop the probes when the run on this bus finishes (however it ends) and emit what they
    measured, before the run writes its report; returns the unsubscribe function."""

    def on_event(event: Event) -> None:
        if isinstance(event, RunFinished) and not probes.stopped:
            for section in measured(probes.stop()):
                events.emit(section)

    return events.subscribe(on_event)
