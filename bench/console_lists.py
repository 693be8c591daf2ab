"""Benchmark: the console's lists and overview at 10,000 VMs, against the HTTP floor.

    python3 bench/console_lists.py [--hosts 1000] [--vms 10000] [--db both|sqlite|mariadb]
                                   [--rounds 30] [--browser-rounds 10] [--no-browser]
                                   [--ping-window 70]

For each database: seeds a 4.3.12 cloud (skylift.lab.seed: --hosts hosts, --vms VMs), serves
its hosts and VPC vRouters from a farm of agents (so they are Connected and pinged, as in a
live cloud, and the MN is not busy retrying unreachable hosts), starts a real MN on it
(skylift.mn.launch.start_mn) and waits until every host is Connected. Then, with one
keep-alive httpx client holding the admin token, it times every call the console makes, one
after the other in each of --rounds rounds (after one untimed call each): the floor is GET
/v1/health (the HTTP stack, no database); the peer is the whole unpaged /v1/vm_instances,
what a console without paging would fetch; a search no row matches is the worst search. In
headless Chromium (tests/browser_kit.py) it then times, on the VMs page, a click on "Next ›"
until the new range ("51–100 of 10,000") is in the page, and the search box from the last
keystroke of "vm-99" until its results are (the page waits 250 ms after the last keystroke
before it asks). Last, GET /v1/health every 20 ms for --ping-window seconds: the MN pings
every agent at once every host.pingInterval (60 s), on the loop that serves the API.

Prints a table per database: median, p95 (nearest rank) and max in ms, the ratio of the
median to the floor's, the body bytes, the rows of a list's page.

--db both (the default): a production MN runs on MariaDB, while the lab and the tests run on
SQLite; their query planners differ (e.g. on LIKE and on counting), so both are measured.
MariaDB is reached at $SKYLIFT_BENCH_MARIADB (default mysql://root@127.0.0.1:3306/).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from skylift.agent.launch import free_port
from skylift.db.engine import Database, create_database, drop_database
from skylift.lab.farm import start_farm, stop_farm
from skylift.lab.seed import seed
from skylift.mn.launch import start_mn, stop_mn

RELEASE = "4.3.12"
PAGE = 50
MARIADB = os.environ.get("SKYLIFT_BENCH_MARIADB", "mysql://root@127.0.0.1:3306/")
TESTS = Path(__file__).resolve().parents[1] / "tests"
FARM_FIRST_ADDRESS = "127.83.0.1"  # away from the other benches' farms (127.80-81.x)
SEARCH = "vm-99"
NO_MATCH = "no-such-vm"  # the worst search: the page query reads every row looking for 50
POLL = 0.02  # seconds between the health calls across a ping round


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# ---- the cloud ----------------------------------------------------------------------------

def new_database(kind: str, work: Path, stack: contextlib.ExitStack) -> Database:
    """An empty database of this kind, dropped (MariaDB) or deleted with work (SQLite) at exit."""
    if kind == "sqlite":
        return Database.from_string(f"sqlite:///{work / 'cloud.db'}")
    server = Database.from_string(MARIADB)
    name = f"skylift_bench_console_{os.getpid()}"
    drop_database(server.with_name(name))
    db = create_database(server, name)
    stack.callback(drop_database, db)
    return db


def agent_nodes(db: Database) -> tuple[list[tuple[str, str]], str]:
    """(uuid, role) of every host then VPC vRouter (the farm serves them, in this order), and
    the cluster of the first VM (the one whose migrate dialog is timed)."""
    eng = db.engine()
    try:
        with eng.connect() as conn:
            nodes = [(r.uuid, "host") for r in conn.execute(
                sa.text("SELECT uuid FROM hosts ORDER BY name"))]
            nodes += [(r.uuid, "vrouter") for r in conn.execute(
                sa.text("SELECT uuid FROM vpc_vrouters ORDER BY name"))]
            cluster = conn.execute(sa.text(
                "SELECT cluster_uuid FROM vm_instances ORDER BY uuid LIMIT 1")).scalar_one()
    finally:
        eng.dispose()
    return nodes, cluster


def point_at(db: Database, nodes: list[tuple[str, str]], addresses: list[str]) -> None:
    """Every node's management IP becomes its farm address."""
    eng = db.engine()
    try:
        with eng.begin() as conn:
            for (uuid, role), address in zip(nodes, addresses):
                table = "hosts" if role == "host" else "vpc_vrouters"
                conn.execute(sa.text(f"UPDATE {table} SET management_ip = :ip WHERE uuid = :u"),
                             {"ip": address, "u": uuid})
    finally:
        eng.dispose()


def wait_connected(client, hosts: int, timeout: float = 300.0) -> None:
    """Until the overview counts every host Connected (the MN's first storm is over)."""
    deadline = time.monotonic() + timeout
    while True:
        by_status = client.get("/v1/overview").json()["hosts_by_status"]
        if by_status.get("Connected") == hosts:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"hosts still not all Connected after {timeout:.0f} s: {by_status}")
        time.sleep(1.0)


def db_version(db: Database) -> str:
    if db.dialect == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    eng = db.engine()
    try:
        with eng.connect() as conn:
            return "MariaDB " + conn.execute(sa.text("SELECT VERSION()")).scalar_one().split("-")[0]
    finally:
        eng.dispose()


# ---- the API ------------------------------------------------------------------------------

def calls(vms: int, cluster: str) -> list[tuple[str, str, dict]]:
    """(label, path, params) of every timed call; the first is the floor, the last the peer."""
    last = max(0, vms - PAGE)
    return [
        ("GET /v1/health (floor)", "/v1/health", {}),
        ("GET /v1/overview", "/v1/overview", {}),
        ("VMs, first page", "/v1/vm_instances", {"limit": PAGE}),
        (f"VMs, last page (offset={last:,})", "/v1/vm_instances", {"limit": PAGE, "offset": last}),
        (f"VMs, search q={SEARCH}", "/v1/vm_instances", {"limit": PAGE, "q": SEARCH}),
        (f"VMs, search q={NO_MATCH} (no row matches)", "/v1/vm_instances",
         {"limit": PAGE, "q": NO_MATCH}),
        ("VMs, search q=Running", "/v1/vm_instances", {"q": "Running", "limit": PAGE}),
        ("hosts, first page", "/v1/hosts", {"limit": PAGE}),
        ("hosts of a cluster, Connected (migrate dialog)", "/v1/hosts",
         {"cluster_uuid": cluster, "status": "Connected", "limit": 500}),
        ("GET /v1/global-settings", "/v1/global-settings", {}),
        ("GET /v1/upgrade (no run)", "/v1/upgrade", {}),
        (f"VMs, unpaged, all {vms:,} (peer)", "/v1/vm_instances", {}),
    ]


def time_api(client, plan: list[tuple[str, str, dict]], rounds: int) -> list[dict]:
    """Every call once untimed, then `rounds` rounds of every call in turn."""
    rows = []
    for label, path, params in plan:
        resp = client.get(path, params=params)
        resp.raise_for_status()
        body = resp.json()
        shown = (f"{body['count']:,} of {body['total']:,}"
                 if isinstance(body, dict) and "total" in body else "")
        rows.append({"call": label, "ms": [], "bytes": len(resp.content), "rows": shown})
    for r in range(rounds):
        for row, (_, path, params) in zip(rows, plan):
            started = time.perf_counter()
            resp = client.get(path, params=params)
            _ = resp.content
            row["ms"].append((time.perf_counter() - started) * 1000)
            if resp.status_code != 200:
                raise RuntimeError(f"{path} {params}: HTTP {resp.status_code}: {resp.text[:300]}")
        if (r + 1) % 10 == 0:
            log(f"  API round {r + 1}/{rounds}")
    return rows


def time_ping_round(client, seconds: float) -> dict:
    """GET /v1/health every POLL s for `seconds`: the MN pings all its agents at once every
    host.pingInterval (60 s by default), on the loop that serves the API."""
    spans = " (spans one ping round of every agent)" if seconds > 60 else ""
    row = {"call": f"GET /v1/health every {POLL * 1000:.0f} ms for {seconds:.0f} s{spans}",
           "ms": [], "bytes": 0, "rows": ""}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        resp = client.get("/v1/health")
        row["ms"].append((time.perf_counter() - started) * 1000)
        row["bytes"] = len(resp.content)
        time.sleep(POLL)
    slow = [ms for ms in row["ms"] if ms > 50]
    row["rows"] = (f"{len(slow)} of {len(row['ms']):,} calls > 50 ms, "
                   f"{sum(slow) / 1000:.1f} s in all")
    return row


# ---- the console in Chromium --------------------------------------------------------------

# Arms a stopwatch in the page: its start is the last real `event` (a click, a keystroke's
# input) on the document, its end the first DOM change after which `css` inside the list
# reads `expected`.
ARM = """
const [event, css, expected] = arguments;
const list = document.getElementById('list-vm_instances');
const b = window.__bench = {start: null, end: null, event};
const ready = () => { const e = list.querySelector(css); return e && e.textContent === expected; };
b.obs = new MutationObserver(() => {
  if (b.start !== null && b.end === null && ready()) {
    b.end = performance.now();
    b.obs.disconnect();
  }
});
b.obs.observe(list, {subtree: true, childList: true, characterData: true});
b.on = () => { b.start = performance.now(); };
document.addEventListener(event, b.on, true);
"""
READ = """
const b = window.__bench;
if (b.end === null) return null;
document.removeEventListener(b.event, b.on, true);
return b.end - b.start;
"""


def time_browser(url: str, token: str, vms: int, rounds: int, expected_search: int) -> dict:
    """Every timing (ms) of Next › and of the search box on the VMs page."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))  # tests/browser_kit.py and tests/console_kit.py
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from browser_kit import chrome, wait_for
    from console_kit import caption_total, go, open_console, sign_in

    def stopwatch(driver, timeout: float = 60.0) -> float:
        return wait_for(driver, lambda d: d.execute_script(READ), timeout)

    out = {"next": [], "search": []}
    with chrome() as driver:
        open_console(driver, url)
        sign_in(driver, token)
        go(driver, "vms", "#list-vm_instances table", timeout=60)
        rounds = min(rounds, max(1, vms // PAGE - 1))
        for i in range(rounds):
            first, last = (i + 1) * PAGE + 1, min((i + 2) * PAGE, vms)
            driver.execute_script(ARM, "click", ".range", f"{first:,}–{last:,} of {vms:,}")
            driver.find_element(By.XPATH, "//button[normalize-space()='Next ›']").click()
            out["next"].append(stopwatch(driver))
        box = driver.find_element(By.ID, "list-vm_instances-q")
        for _ in range(rounds):
            driver.execute_script(ARM, "input", "caption", f"VMs: {expected_search:,}")
            box.send_keys(SEARCH)
            out["search"].append(stopwatch(driver))
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(Keys.BACKSPACE)
            wait_for(driver, lambda d: caption_total(d, "list-vm_instances") == vms, 60)
    return out


# ---- one database -------------------------------------------------------------------------

def run(kind: str, args: argparse.Namespace) -> dict:
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix=f"skylift-console-bench-{kind}-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        db = new_database(kind, work, stack)
        log(f"{kind}: seeding {RELEASE}, {args.hosts:,} hosts, {args.vms:,} VMs")
        seeded = seed(db, RELEASE, args.hosts, args.vms)
        nodes, cluster = agent_nodes(db)
        log(f"{kind}: {seeded.rows:,} rows in {seeded.seconds:.1f} s; "
            f"starting a farm of {len(nodes):,} agents")
        farm = start_farm(len(nodes), base_dir=work / "farm", agent_port=0, ssh_port=0,
                          release=RELEASE, first_address=FARM_FIRST_ADDRESS,
                          uuids=[u for u, _ in nodes], roles=[r for _, r in nodes],
                          timeout=300.0)
        stack.callback(stop_farm, farm)
        point_at(db, nodes, farm.addresses)
        mn = start_mn(db.url.render_as_string(hide_password=False), port=free_port(),
                      agent_port=farm.agent_port, env={"SKYLIFT_HOME": str(work / "home")},
                      timeout=120.0)
        stack.callback(stop_mn, mn)
        client = stack.enter_context(mn.client(timeout=120.0))
        started = time.perf_counter()
        wait_connected(client, args.hosts)
        log(f"{kind}: MN {mn.url} up, {args.hosts:,} hosts Connected after "
            f"{time.perf_counter() - started:.1f} s; timing {args.rounds} rounds")
        plan = calls(args.vms, cluster)
        rows = time_api(client, plan, args.rounds)
        if not args.no_browser:
            expected = client.get("/v1/vm_instances",
                                  params={"q": SEARCH, "limit": 1}).json()["total"]
            log(f"{kind}: Chromium, {args.browser_rounds} rounds of Next › and of search")
            seen = time_browser(mn.url, mn.token(), args.vms, args.browser_rounds, expected)
            by_label = {r["call"]: r for r in rows}
            first = by_label["VMs, first page"]
            searched = by_label[f"VMs, search q={SEARCH}"]
            rows.insert(-1, {"call": "console: click Next › → new range shown", "ms": seen["next"],
                             "bytes": first["bytes"], "rows": first["rows"]})
            rows.insert(-1, {"call": f"console: last keystroke of \"{SEARCH}\" → results shown "
                             "(incl. 250 ms debounce)", "ms": seen["search"],
                             "bytes": searched["bytes"], "rows": searched["rows"]})
        if args.ping_window:
            log(f"{kind}: GET /v1/health every {POLL * 1000:.0f} ms for {args.ping_window:.0f} s")
            rows.append(time_ping_round(client, args.ping_window))
        return {"kind": kind, "version": db_version(db), "rows": rows, "seeded": seeded.rows,
                "agents": len(nodes)}


def print_table(result: dict, args: argparse.Namespace) -> None:
    rows = result["rows"]
    floor = statistics.median(rows[0]["ms"])
    print(f"\n{result['version']}: {RELEASE}, {args.hosts:,} hosts ({result['agents']:,} agents "
          f"Connected, farm), {args.vms:,} VMs, {result['seeded']:,} rows; "
          f"{args.rounds} rounds (API), {args.browser_rounds} (console)\n")
    print("| call | median ms | p95 ms | max ms | × floor | bytes | rows |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        median = statistics.median(r["ms"])
        print(f"| {r['call']} | {median:.1f} | {percentile(r['ms'], 95):.1f} "
              f"| {max(r['ms']):.1f} | {median / floor:.1f} | {r['bytes']:,} | {r['rows']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[5:]))
    parser.add_argument("--hosts", type=int, default=1000, help="hosts (default 1000)")
    parser.add_argument("--vms", type=int, default=10000, help="VMs (default 10000)")
    parser.add_argument("--db", choices=("both", "sqlite", "mariadb"), default="both",
                        help="the MN's database (default both: MariaDB then SQLite)")
    parser.add_argument("--rounds", type=int, default=30,
                        help="timed rounds of every API call (default 30)")
    parser.add_argument("--browser-rounds", type=int, default=10,
                        help="timed clicks on Next › and searches in Chromium (default 10)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    parser.add_argument("--ping-window", type=float, default=70.0,
                        help="seconds of GET /v1/health every 20 ms at the end, long enough to "
                             "span one of the MN's ping rounds (every 60 s); 0: skip "
                             "(default 70)")
    args = parser.parse_args()
    if args.hosts < 1:
        parser.error("--hosts must be 1 or more")
    if args.vms < 2 * PAGE:
        parser.error(f"--vms must be {2 * PAGE} or more (two pages of the list)")
    if args.rounds < 1 or args.browser_rounds < 1:
        parser.error("--rounds and --browser-rounds must be 1 or more")
    if args.ping_window < 0:
        parser.error("--ping-window must be 0 (skip) or more")
    started = time.perf_counter()
    load = os.getloadavg()
    results = [run(kind, args) for kind in
               (("mariadb", "sqlite") if args.db == "both" else (args.db,))]
    print(f"\n{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average {load[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    for result in results:
        print_table(result, args)
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
