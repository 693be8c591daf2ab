"""Benchmark: the multi-MN upgrade of an HA cloud of 1,000 hosts and 10,000 VMs, beside the
single-MN upgrade of the same cloud.

    python3 bench/upgrade_ha.py [--releases 3.7.1,3.2.0] [--hosts 1000] [--vms 10000]
                                [--name bench-upha] [--single-name bench-upha-mn1]
                                [--db mysql://root@127.0.0.1:3306/] [--out DIR] [--home DIR]
                                [--writes zones|none] [--no-single] [--keep]

For each starting release, one after the other (never two labs up at once):

1. **HA**: a 3-MN lab of that release (`lab up --mns 3`: three MNs in namespaces, each on its
   own Galera member, behind a keepalived VIP; the hosts served by the host farm, VMs held by
   the simulated hypervisor), the newest release's artefacts and HA suite built and signed
   with the lab's key (skylift.lab.ha_upgrade.artefact_args), then, as an operator would,
   `skylift upgrade run --offline ... --json` inside the VIP holder's namespace with its state
   folder (skylift.lab.ha_upgrade.skylift_on). Meanwhile, from outside, as users see it:
   - two API probes on the VIP every 0.1 s, each on a new connection: `vip` asks
     /v1/version, which an MN answers 200 in maintenance too, so its gaps are the times the
     VIP gave no answer at all (refused, timed out, or 5xx: "VIP longest gap", "VIP
     refused" counts refusals of both probes); `api` asks /v1/zones, which maintenance
     answers 503;
   - a watcher of who answers /v1/version on the VIP (pid, start, mode). A lab MN of an older
     release is the lab's stand-in for it and serves in maintenance already before the
     upgrade (docs/ha.md), so /v1/zones says 503 from the start; a real MN of that release
     served until the VIP holder's old MN gave the port to the new software in maintenance
     (the last MN of `mns-to-maintenance`). The "API maintenance window" is therefore the
     `api` probe's time without a 200 from the moment the VIP is first answered by an MN
     process other than the lab's own (the VIP holder's handover) on, i.e. until the VIP
     holder's new MN serves in normal mode (the first MN of `mns-to-new`), plus any later
     gap. result.json also has the journal's window (`mns-to-maintenance` started to
     `mns-to-new` done, as the run's report counts it) and every MN process that answered;
   - every VM probed with its boot id (rounds every 0.5 s): probes lost, boot ids changed;
   - with --writes zones (the default), a writer creating zones through the VIP
     (skylift.lab.failover.ProbeWrites, one name each, 50 ms apart): every acknowledged one
     must exist afterwards (writes lost). The run's proof names the zones created during
     the upgrade (nothing recorded before is gone); --writes none measures the run
     without them.
   The run's per-phase seconds come from its `phase_finished` events, its total from
   `run_finished`, the migration's seconds from the `management-nodes/migrate-database`
   step's `step_done` event.
2. **Peer**: the single-MN upgrade of the same cloud (bench/upgrade_e2e.py's cloud: one MN
   on this machine's MariaDB, the host farm, the same hosts and VMs, the newest release's
   artefacts), run the same way as the HA one (`skylift upgrade run --offline ... --json`
   in a child process, with the MN's state folder) under the same API and VM probes; ratio
   = HA total / single-MN total (each the run's own seconds, `run_finished`). The phase
   table also gives each run's seconds outside its steps' own work (between the steps: the
   engine's records and, in the multi-MN run, the copy of the journal to every MN).

Goals (the issue): the VIP refuses no connection and never goes more than 2 s without an
answer; the API's maintenance window <= the migration + 10 s; no VM probe and no write lost;
ratio <= 1.3.

Prints one row per release and writes result.json (and each run's events, stderr, probe
timelines and report) to --out. Results go to docs/benchmarks.md by hand, with the command.
Needs root. Labs are taken down at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# the `vip` probe's gaps over this many seconds break the goal
VIP_GAP_GOAL_S = 2.0
WINDOW_SLACK_GOAL_S = 10.0
RATIO_GOAL = 1.3
MIGRATE_HA = "management-nodes/migrate-database"
MIGRATE_SINGLE = "management-node/migrate-database"
OPENS_HA = "management-nodes/mns-to-maintenance"
CLOSES_HA = "management-nodes/mns-to-new"


def log(msg: str) -> None:
    print(f"· {msg}", file=sys.stderr, flush=True)


# --- one upgrade command, its events ------------------------------------------------------------
class UpgradeCommand:
    """`skylift upgrade run ... --json` as a child process: its events kept (and written to
    events.jsonl), its stderr written to stderr.log, the steps logged as they finish."""

    def __init__(self, proc: subprocess.Popen, out_dir: Path) -> None:
        self.proc, self.out_dir = proc, out_dir
        self.events: list[dict] = []
        self.started = time.monotonic()
        self.wall = 0.0
        out_dir.mkdir(parents=True, exist_ok=True)
        self._err = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err.start()

    def _drain_stderr(self) -> None:
        with open(self.out_dir / "stderr.log", "w") as fh:
            for line in self.proc.stderr:
                fh.write(line)

    def wait(self, timeout: float) -> int:
        end = time.monotonic() + timeout
        # SIGTERM stops a run as Ctrl+C does: journalled and reported
        watchdog = threading.Timer(timeout, self.proc.terminate)
        watchdog.daemon = True
        watchdog.start()
        try:
            return self._read(end)
        finally:
            watchdog.cancel()

    def _read(self, end: float) -> int:
        with open(self.out_dir / "events.jsonl", "w") as fh:
            for line in self.proc.stdout:  # the child's stdout ends when it exits
                fh.write(line)
                fh.flush()
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                self.events.append(ev)
                kind = ev.get("event")
                if kind == "step_done":
                    log(f"  {ev['step']}: {ev['seconds']:.1f} s")
                elif kind in ("step_failed", "run_finished") or (
                        kind == "message" and ev.get("level") != "info"):
                    log(f"  {kind}: {json.dumps(ev)[:400]}")
        code = self.proc.wait(timeout=max(30.0, end - time.monotonic()))
        self.wall = time.monotonic() - self.started
        self._err.join(timeout=10)
        return code

    def finished(self) -> dict:
        return next((e for e in reversed(self.events) if e.get("event") == "run_finished"), {})

    def phases(self) -> dict[str, float]:
        """Seconds per phase, from phase_finished (step_done sums for a phase without one)."""
        out: dict[str, float] = {}
        for e in self.events:
            if e.get("event") == "phase_finished":
                out[e["phase"]] = out.get(e["phase"], 0.0) + float(e["seconds"])
        for e in self.events:
            if e.get("event") == "step_done":
                phase = e["step"].split("/")[0]
                if not any(x.get("event") == "phase_finished" and x["phase"] == phase
                           for x in self.events):
                    out[phase] = out.get(phase, 0.0) + float(e["seconds"])
        return out

    def stop(self) -> None:
        """Stop the command if it still runs (the bench was interrupted): SIGTERM, as Ctrl+C
        would, then SIGKILL after 60 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def step_seconds(self, key: str) -> float | None:
        return next((float(e["seconds"]) for e in self.events
                     if e.get("event") == "step_done" and e.get("step") == key), None)

    def step_started(self, key: str) -> float | None:
        return next((float(e["ts"]) for e in self.events
                     if e.get("event") == "step_started" and e.get("step") == key), None)

    def step_done_ts(self, key: str) -> float | None:
        return next((float(e["ts"]) for e in self.events
                     if e.get("event") == "step_done" and e.get("step") == key), None)

    def outside_steps(self) -> float | None:
        """Seconds of the run outside its steps' own work (between and around the steps:
        the engine's records, and the multi-MN run's copy of its journal to every MN)."""
        fin = self.finished()
        if not fin:
            return None
        inside = sum(float(e["seconds"]) for e in self.events if e.get("event") == "step_done")
        return round(float(fin["seconds"]) - inside, 1)

    def failures(self) -> list[str]:
        return [f"{e['step']}: {e['error']}" for e in self.events
                if e.get("event") == "step_failed"]


# --- who answers on the VIP --------------------------------------------------------------------
class VipWatch:
    """A thread asking the VIP's /v1/version every `interval` s on a new connection and
    keeping which MN process answered (pid, start, mode): the moment the VIP holder's MN of
    the old release stops answering is when the API goes into the upgrade's maintenance on
    the VIP (a lab MN of an older release serves in maintenance all along, see the module's
    text, so the API probe alone cannot tell)."""

    def __init__(self, url: str, verify, interval: float = 0.1, timeout: float = 1.0) -> None:
        self.url, self.verify, self.interval, self.timeout = url, verify, interval, timeout
        self.runs: list[dict] = []  # consecutive answers of one MN process: first, last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vip-watch", daemon=True)

    def start(self) -> "VipWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout, verify=self.verify,
                          limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not self._stop.is_set():
                began = time.time()
                try:
                    v = http.get(self.url + "/v1/version").json()
                    who = {"pid": v.get("pid"), "started_at": v.get("started_at"),
                           "mode": v.get("mode"), "release": v.get("release")}
                except (httpx.HTTPError, ValueError):
                    who = None
                if who is not None:
                    last = self.runs[-1] if self.runs else None
                    if last and all(last[k] == who[k] for k in who):
                        last["last"] = began
                        last["answers"] += 1
                    else:
                        self.runs.append({**who, "first": began, "last": began, "answers": 1})
                self._stop.wait(max(0.0, self.interval - (time.time() - began)))

    def first_not(self, pids: set[int]) -> float | None:
        """When the VIP was first answered by an MN process other than these."""
        return next((r["first"] for r in self.runs if r["pid"] not in pids), None)


# --- what the probes saw ------------------------------------------------------------------------
def unavailable_after(api, since: float | None) -> float:
    """Seconds without an ok answer on this API probe from `since` on (wall clock)."""
    if since is None:
        return sum(w["seconds"] for w in api.unavailable)
    return sum(max(0.0, w["end"] - max(w["start"], since)) for w in api.unavailable)


def probe_figures(summary, opened: float | None) -> dict:
    """The probes' figures; `opened`: when the API's maintenance window opened on the VIP."""
    vip, api = summary.api["vip"], summary.api["api"]
    return {
        "vip_longest_gap_s": round(vip.longest_gap_seconds, 2),
        "vip_refused": vip.refused + api.refused,
        "vip_timeouts": vip.timeouts,
        "vip_results": vip.results,
        "vip_gaps": [w for w in vip.unavailable],
        "api_window_s": round(unavailable_after(api, opened), 2),
        "api_results": api.results,
        "api_windows_after_open": [w for w in api.unavailable
                                   if opened is None or w["end"] > opened],
        "vm_probes_sent": summary.vm_probes_sent,
        "vm_probes_lost": summary.vm_probes_lost,
        "vm_boot_id_changes": len(summary.boot_id_changes),
    }


def _probes(out_dir: Path, api_url: str, token: str, verify, state: dict):
    from skylift.lab.probes import Probes, vm_targets
    from skylift.lab.state import lab_trust

    trust = lab_trust(state)
    hosts = [n["url"] for n in state["nodes"] if n["kind"] == "host"]
    return Probes(out_dir, api_url=api_url, api_paths={"vip": "/v1/version", "api": "/v1/zones"},
                  token=token, api_verify=verify, api_interval=0.1,
                  vms=vm_targets(hosts, trust=trust), vm_interval=0.5, concurrency=64,
                  agent_trust=trust)


# --- the HA cloud --------------------------------------------------------------------------------
def run_ha(release: str, args, out: Path) -> dict:
    from skylift.lab.failover import ProbeWrites, _access, _client
    from skylift.lab.ha_upgrade import artefact_args, mn_entry, skylift_on
    from skylift.lab.installation import LabSpec, down, up

    name = args.name
    got: dict = {"release": release, "hosts": args.hosts, "vms": args.vms, "mns": 3}
    t = time.monotonic()
    state = up(LabSpec(name=name, release=release, hosts=args.hosts, vms=args.vms, mns=3,
                       farm=True, agent_port=0), on_step=lambda m: log(f"  {m}"))
    got["lab_s"] = round(time.monotonic() - t, 1)
    got["resources"], got["running_vms"] = len(state["nodes"]), len(state["vms"])
    log(f"HA lab {name} ({release}) up in {got['lab_s']} s: {got['resources']} resources, "
        f"{got['running_vms']} running VMs, VIP {state['ha']['vip']} on "
        f"{state['mn'].get('vip_holder')}")
    try:
        t = time.monotonic()
        arts = artefact_args(state)
        got["artefacts_s"] = round(time.monotonic() - t, 1)
        holder = mn_entry(state)["name"]
        got["coordinator"] = holder
        token, verify = _access(state)
        vip_url = state["mn"]["url"]
        old_pids = {m["pid"] for m in state["ha"]["mns"]}
        probes = _probes(out / "probes", vip_url, token, verify, state)
        watch = VipWatch(vip_url, verify)
        writes = (ProbeWrites(vip_url, token, verify, tag=f"upha-{int(time.time())}")
                  if args.writes == "zones" else None)
        probes.start()
        watch.start()
        if writes:
            writes.start()
        cmd = None
        try:
            time.sleep(args.settle)
            log(f"upgrading the HA cloud {release} -> newest on {holder}")
            cmd = UpgradeCommand(skylift_on(state, None, ["upgrade", "run", "--offline", *arts,
                                                          "--json"], popen=True), out)
            got["exit_code"] = cmd.wait(args.timeout)
            time.sleep(args.settle)
        finally:
            if cmd is not None:
                cmd.stop()
            if writes:
                writes.stop()
            watch.stop()
            summary = probes.stop()
        lost = None
        if writes:
            try:
                with _client(vip_url, token, verify, timeout=60.0) as c:
                    lost = writes.lost(c)
            except Exception as exc:  # noqa: BLE001 - the figure is unknown, say why
                got["writes_check_error"] = repr(exc)
        fin = cmd.finished()
        got.update(status=fin.get("status", "no run_finished"), total_s=fin.get("seconds"),
                   command_wall_s=round(cmd.wall, 1), phases=cmd.phases(),
                   migrate_s=cmd.step_seconds(MIGRATE_HA), failures=cmd.failures(),
                   outside_steps_s=cmd.outside_steps(),
                   writes_acked=len(writes.acked) if writes else None,
                   writes_failed=writes.failed if writes else None,
                   writes_lost=None if lost is None else len(lost),
                   writes_lost_names=(lost or [])[:10])
        # the API window on the VIP: from the VIP holder's old MN giving the VIP up to the new
        # software in maintenance, until /v1/zones answers 200 again (and any later gap)
        opened, closed = cmd.step_started(OPENS_HA), cmd.step_done_ts(CLOSES_HA)
        handover = watch.first_not(old_pids)
        got["window_from"] = "VIP holder's handover" if handover else f"{OPENS_HA} started"
        got.update(probe_figures(summary, handover or opened))
        got["vip_answered_by"] = watch.runs
        got["journal_window_s"] = (round(closed - opened, 2) if opened and closed else None)
        got["handover_after_step_start_s"] = (round(handover - opened, 2)
                                              if handover and opened else None)
        if got["migrate_s"] is not None:
            got["window_minus_migrate_s"] = round(got["api_window_s"] - got["migrate_s"], 2)
        # the run's own account: status and report, on whichever MN holds the VIP now
        try:
            st = skylift_on(state, None, ["upgrade", "status", "--json"], timeout=120)
            got["upgrade_status"] = json.loads(st.stdout) if st.returncode == 0 else st.stderr
            now = mn_entry(state)
            got["vip_holder_after"] = now["name"]
            report = Path(now["home"]) / "upgrade" / "current" / "report.md"
            if report.exists():
                (out / "report.md").write_text(report.read_text())
        except Exception as exc:  # noqa: BLE001 - the figures above stand without it
            got["upgrade_status"] = repr(exc)
    finally:
        if not args.keep:
            down(name)
        else:
            log(f"lab {name} left up (--keep)")
    return got


# --- the single-MN peer --------------------------------------------------------------------------
def run_single(release: str, args, out: Path) -> dict:
    from skylift.db.engine import Database, create_database, drop_database
    from skylift.lab.artefacts import build_for_upgrade
    from skylift.lab.installation import LabSpec, down, up
    from skylift.mn.auth import read_token, token_path
    from skylift.mn.https import client_verify

    name = args.single_name
    got: dict = {"release": release, "hosts": args.hosts, "vms": args.vms, "mns": 1}
    server = Database.from_string(args.db)
    db = server.with_name(f"skylift_bench_upha_{release.replace('.', '')}")
    drop_database(db)  # a run cut short may have left it
    db = create_database(server, db.url.database)
    t = time.monotonic()
    try:
        state = up(LabSpec(name=name, release=release, hosts=args.hosts, vms=args.vms,
                           driver="sim", farm=True, db_url=db.url_without_password(),
                           agent_port=0), on_step=lambda m: log(f"  {m}"))
        got["lab_s"] = round(time.monotonic() - t, 1)
        got["resources"], got["running_vms"] = len(state["nodes"]), len(state["vms"])
        log(f"single-MN lab {name} ({release}) up in {got['lab_s']} s")
        home = Path(state["mn"]["home"])
        arts = build_for_upgrade(home)
        url = state["mn"]["url"]
        token = read_token(token_path(home))
        probes = _probes(out / "probes", url, token, client_verify(url, home), state)
        probes.start()
        cmd = None
        try:
            time.sleep(args.settle)
            log(f"upgrading the single-MN cloud {release} -> newest")
            env = {**os.environ, "SKYLIFT_HOME": str(home)}
            proc = subprocess.Popen(
                [sys.executable, "-m", "skylift.cli.main", "upgrade", "run", "--offline",
                 "--image", str(arts.image), "--installer", str(arts.installer),
                 "--tool", str(arts.tool), "--json"], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True)
            cmd = UpgradeCommand(proc, out)
            got["exit_code"] = cmd.wait(args.timeout)
            time.sleep(args.settle)
        finally:
            if cmd is not None:
                cmd.stop()
            summary = probes.stop()
        fin = cmd.finished()
        got.update(status=fin.get("status", "no run_finished"), total_s=fin.get("seconds"),
                   command_wall_s=round(cmd.wall, 1), phases=cmd.phases(),
                   migrate_s=cmd.step_seconds(MIGRATE_SINGLE), failures=cmd.failures(),
                   outside_steps_s=cmd.outside_steps(),
                   vm_probes_sent=summary.vm_probes_sent,
                   vm_probes_lost=summary.vm_probes_lost)
        report = home / "upgrade" / "current" / "report.md"
        if report.exists():
            (out / "report.md").write_text(report.read_text())
    finally:
        if not args.keep:
            down(name)
            drop_database(db)
        else:
            log(f"lab {name} left up (--keep), database {db.url.database} kept")
    return got


# --- the table -----------------------------------------------------------------------------------
def _f(x, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def print_table(rows: list[dict]) -> None:
    phases: list[str] = []
    for r in rows:
        for p in (r["ha"].get("phases") or {}):
            if p not in phases:
                phases.append(p)
    cols = (["from", "hosts", "VMs", "status", "total s"] + [f"{p} s" for p in phases]
            + ["VIP longest gap s", "VIP refused", "API maintenance window s", "migration s",
               "window - migration s", "VM probes sent / lost", "writes acked / lost",
               "single-MN total s", "ratio"])
    print("| " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * 2 + "---|" + "---:|" * (len(cols) - 4))
    for r in rows:
        ha, one = r["ha"], r.get("single") or {}
        ratio = (ha["total_s"] / one["total_s"]
                 if ha.get("total_s") and one.get("total_s") else None)
        r["ratio"] = None if ratio is None else round(ratio, 2)
        cells = [r["release"], f"{ha['hosts']:,}", f"{ha.get('running_vms', ha['vms']):,}",
                 ha.get("status", ha.get("error", "-")), _f(ha.get("total_s"))]
        cells += [_f((ha.get("phases") or {}).get(p)) for p in phases]
        cells += [_f(ha.get("vip_longest_gap_s"), ".2f"), _f(ha.get("vip_refused"), "d"),
                  _f(ha.get("api_window_s")), _f(ha.get("migrate_s"), ".2f"),
                  _f(ha.get("window_minus_migrate_s")),
                  f"{_f(ha.get('vm_probes_sent'), ',')} / {_f(ha.get('vm_probes_lost'), 'd')}",
                  f"{_f(ha.get('writes_acked'), ',')} / {_f(ha.get('writes_lost'), 'd')}",
                  _f(one.get("total_s")) + ("" if one.get("status") in (None, "ok")
                                            else f" ({one['status']})"),
                  _f(ratio, ".2f")]
        print("| " + " | ".join(cells) + " |")
    if any(r.get("single") for r in rows):
        print()
        print("Phases of the two upgrades (s):")
        names: list[str] = []
        for r in rows:
            for side in ("ha", "single"):
                for p in ((r.get(side) or {}).get("phases") or {}):
                    if p not in names:
                        names.append(p)
        print("| run | total | " + " | ".join(names) + " | outside steps |")
        print("|---|---:|" + "---:|" * (len(names) + 1))
        for r in rows:
            for side, label in (("ha", "3 MNs"), ("single", "1 MN")):
                s = r.get(side) or {}
                if not s:
                    continue
                print(f"| {r['release']} {label} | {_f(s.get('total_s'))} | "
                      + " | ".join(_f((s.get("phases") or {}).get(p)) for p in names)
                      + f" | {_f(s.get('outside_steps_s'))} |")
    print()
    for r in rows:
        ha = r["ha"]
        if "total_s" not in ha:
            print(f"{r['release']}: HA run did not finish: {ha.get('error')}")
            continue
        goals = [
            ("VIP refused 0", ha.get("vip_refused") == 0),
            (f"VIP gap <= {VIP_GAP_GOAL_S:g} s", (ha.get("vip_longest_gap_s") or 0)
             <= VIP_GAP_GOAL_S),
            (f"API window <= migration + {WINDOW_SLACK_GOAL_S:g} s",
             ha.get("window_minus_migrate_s") is not None
             and ha["window_minus_migrate_s"] <= WINDOW_SLACK_GOAL_S),
            ("VM probes lost 0", ha.get("vm_probes_lost") == 0
             and not ha.get("vm_boot_id_changes")),
            ("writes lost 0", None if ha.get("writes_acked") is None
             else ha.get("writes_lost") == 0),
            # a ratio counts only between two whole runs (a failed one stopped early)
            (f"ratio <= {RATIO_GOAL:g}", None if r.get("ratio") is None or ha.get("status")
             != "ok" or (r.get("single") or {}).get("status") != "ok"
             else r["ratio"] <= RATIO_GOAL),
        ]
        said = {True: "met", False: "NOT met", None: "not measured"}  # None: see above
        print(f"{r['release']}: " + "; ".join(f"{g} {said[ok]}" for g, ok in goals)
              + (f"; failed steps: {ha['failures']}" if ha.get("failures") else ""))


def save(out: Path, args, rows: list[dict]) -> None:
    """result.json: the command, the machine, every row so far (written after each release)."""
    (out / "result.json").write_text(json.dumps(
        {"command": " ".join(["python3", *sys.argv]), "args": vars(args),
         "cores": os.cpu_count(), "load_average": os.getloadavg(), "rows": rows},
        indent=2, default=str) + "\n")


def _check_blocks(parser, names: list[str]) -> None:
    """The labs' blocks differ, and nothing of another lab is on the HA lab's block (this
    state folder's own labs of these names are taken down first)."""
    from skylift.lab.installation import down
    from skylift.lab.netns import lab_network_exists
    from skylift.lab.state import block_of

    blocks = [block_of(n) for n in names]
    if len(set(blocks)) != len(blocks):
        parser.error(f"--name and --single-name share the lab block {blocks[0]}: pick another")
    for n, b in zip(names, blocks):
        log(f"lab {n}: block {b}")
        down(n)
    if lab_network_exists(blocks[0]):
        parser.error(f"the namespaces of lab block {blocks[0]} exist (another lab, or a run cut "
                     f"short): pick another --name, or take that lab down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", default="3.7.1,3.2.0")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms", type=int, default=10000)
    parser.add_argument("--name", default="bench-upha", help="the HA lab's name (its block)")
    parser.add_argument("--single-name", default="bench-upha-mn1",
                        help="the single-MN lab's name (its block)")
    parser.add_argument("--db", default="mysql://root@127.0.0.1:3306/",
                        help="the database server of the single-MN peer")
    parser.add_argument("--writes", choices=("zones", "none"), default="zones",
                        help="zones: a writer creates zones through the VIP during the HA "
                             "upgrade (every acknowledged one must exist afterwards); none: "
                             "no writes")
    parser.add_argument("--no-single", action="store_true",
                        help="skip the single-MN peer (no ratio)")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds one upgrade command may take")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds of probing before and after each upgrade")
    parser.add_argument("--out", help="folder of the results (default: a new one in /tmp)")
    parser.add_argument("--home", help="state folder to keep (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="leave the labs up at the end")
    args = parser.parse_args()
    if args.hosts < 1 or args.vms < 0:
        parser.error("--hosts is at least 1 and --vms at least 0")
    if os.geteuid() != 0:
        parser.error("run it as root (network namespaces, keepalived, Galera)")
    releases = [r.strip() for r in args.releases.split(",") if r.strip()]
    home = Path(args.home or tempfile.mkdtemp(prefix="skylift-bench-upha-"))
    os.environ["SKYLIFT_HOME"] = str(home)
    out = Path(args.out or tempfile.mkdtemp(prefix="skylift-bench-upha-out-"))
    out.mkdir(parents=True, exist_ok=True)
    _check_blocks(parser, [args.name] + ([] if args.no_single else [args.single_name]))

    rows = []
    for release in releases:
        row: dict = {"release": release}
        rows.append(row)
        try:
            row["ha"] = run_ha(release, args, out / release / "ha")
        except Exception as exc:  # noqa: BLE001 - the next release still runs
            log(f"HA run from {release} failed: {exc!r}")
            row["ha"] = {"release": release, "hosts": args.hosts, "vms": args.vms,
                         "error": repr(exc)}
        if not args.no_single:
            try:
                row["single"] = run_single(release, args, out / release / "single")
            except Exception as exc:  # noqa: BLE001
                log(f"single-MN run from {release} failed: {exc!r}")
                row["single"] = {"error": repr(exc)}
        save(out, args, rows)

    print(f"\nMulti-MN upgrade (3 MNs on Galera behind a VIP) vs the single-MN upgrade of the "
          f"same cloud; farm hosts {args.hosts:,}, VMs {args.vms:,}; {os.cpu_count()} cores; "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print_table(rows)
    save(out, args, rows)
    print(f"\nresults: {out / 'result.json'}")


if __name__ == "__main__":
    main()
