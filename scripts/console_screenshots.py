#!/usr/bin/env python3
"""Screenshots of the MN's web console for docs/console.md, taken from a real lab cloud.

Usage: python3 scripts/console_screenshots.py [--out DIR]

What it does, in order:

1. Brings up a lab cloud named "shots" the way the upgrade tests do (tests/upgrade/
   upgrade_world.py `World`: release 3.7.1, real agents, the 4.3.12 artefacts built and
   trusted) with 4 hosts and 40 VMs, under a SKYLIFT_HOME of its own in a temporary folder
   (so it never meets another lab or the machine's own /var/lib/skylift).
2. Opens the console in headless Chromium (Debian's chromium + chromium-driver, through
   tests/browser_kit.py) at 1366x900 and signs in with the admin token.
3. Runs the whole upgrade to 4.3.12 with the upgrade page open, and saves it while a step
   runs, while the API's maintenance window is open (if a poll catches it), after the run
   (status, proof, report), and the notice the page shows once it has moved itself onto the
   new release's assets.
4. On the upgraded cloud (normal mode, hosts Connected) it saves the sign-in page, the
   overview, hosts, VMs (with the confirmation of a Stop open; then Cancel, and the VM is
   checked still Running), volumes, networks, accounts and settings.
5. Always tears the lab down (`skylift.lab.installation.down`) and checks that no process
   of the lab and no network namespace of its address block is left.

Full-page shots: the window is made as tall as the document (capped at 2400 px) for the shot.
PNGs are optimised with Pillow when it is installed (otherwise written as Chromium made
them); a file over 400 KB is reported. A table of the files written and their sizes is
printed at the end.

It reuses the tests' helpers: /work/main/tests and /work/main/tests/upgrade are put on
sys.path for browser_kit, console_kit and upgrade_world. It needs the project's virtual
environment (skylift, selenium, httpx); started by another Python it re-runs itself with
.venv/bin/python. It runs as root, like the lab; it takes several minutes.

Options: --out DIR (default docs/img/console in this checkout). Usage mistakes exit 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
DEFAULT_OUT = ROOT / "docs" / "img" / "console"
LAB_NAME = "shots"
HOSTS, VMS = 4, 40
WIDTH, HEIGHT, MAX_HEIGHT = 1366, 900, 2400
MAX_BYTES = 400 * 1024
UPGRADE_TIMEOUT = 900  # s

LOADED_APP_JS = "return document.querySelector(\"script[src^='/static/app.']\").getAttribute('src')"
HOW_LOADED = "return performance.getEntriesByType('navigation')[0].type"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints two)
        sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
        sys.exit(2)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="console_screenshots.py",
                    description="Bring up a lab cloud, upgrade it with the console open, and "
                                "save PNG screenshots of every console page.")
    parser.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT),
                        help=f"folder for the PNGs (default: {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    args.out = out.resolve()
    return args


def ensure_venv() -> None:
    """Re-run under the project's virtual environment when this Python lacks its packages."""
    import importlib.util

    if all(importlib.util.find_spec(name) for name in ("selenium", "skylift", "httpx")):
        return
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parents[1].resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()),
                                    *sys.argv[1:]])
    sys.stderr.write(f"console_screenshots.py: skylift or selenium is not importable and "
                     f"{VENV_PYTHON} is missing; run scripts/test.sh once to make it\n")
    sys.exit(1)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- the browser ------------------------------------------------------------------------------

class Shots:
    """Saves the console's screenshots into a folder and remembers what it wrote."""

    def __init__(self, driver, out: Path) -> None:
        self.driver, self.out, self.written = driver, out, []

    def save(self, name: str, full: bool = True) -> Path:
        """Save <name>.png: a 1366x900 viewport, or as tall as the document (up to 2400 px)
        when full. The window is sized for the shot (its own bars added), then put back."""
        d = self.driver
        height = HEIGHT
        if full:
            height = d.execute_script("return Math.max(document.documentElement.scrollHeight,"
                                      " document.body.scrollHeight)")
            height = max(HEIGHT, min(int(height), MAX_HEIGHT))
        bars = d.execute_script("return window.outerHeight - window.innerHeight") or 0
        d.set_window_size(WIDTH, height + int(bars))
        time.sleep(0.4)  # layout and paint at the new size
        path = self.out / f"{name}.png"
        d.save_screenshot(str(path))
        d.set_window_size(WIDTH, HEIGHT)
        optimise(path)
        if path not in self.written:
            self.written.append(path)
        say(f"saved {path.name} ({path.stat().st_size // 1024} KB)")
        return path


def optimise(path: Path) -> None:
    """A smaller PNG with Pillow if it is installed: re-encoded losslessly (kept only if it is
    smaller: Chromium's own encoding often is), and if still over 400 KB, in 256 colours."""
    try:
        from PIL import Image
    except ImportError:
        return
    import io

    def encoded(image) -> bytes:
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return out.getvalue()

    with Image.open(path) as img:
        img.load()
    best = min(path.read_bytes(), encoded(img), key=len)
    if len(best) > MAX_BYTES:
        best = min(best, encoded(img.convert("RGB").quantize(colors=256)), key=len)
    if len(best) < path.stat().st_size:
        path.write_bytes(best)


def busy_lists(driver) -> bool:
    return driver.execute_script(
        "return [...document.querySelectorAll('[aria-busy]')].some((e) =>"
        " e.getAttribute('aria-busy') === 'true');")


def settle(driver, wait_for, css: str, timeout: float = 20) -> None:
    """Wait for css to be visible and every list on the page loaded."""
    wait_for(driver, css, timeout)
    wait_for(driver, lambda d: not busy_lists(d), timeout)
    time.sleep(0.3)


# ---- the lab ------------------------------------------------------------------------------

def api_client(url: str, token: str):
    import httpx

    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def wait_hosts_connected(client, timeout: float = 180) -> list[dict]:
    """Every host Connected (as the hosts list says); returns the rows last read."""
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        try:
            rows = client.get("/v1/hosts", params={"limit": 100}).json().get("items", [])
        except Exception:  # noqa: BLE001 - the MN may be restarting: ask again
            rows = []
        if rows and all(r.get("status") == "Connected" for r in rows):
            return rows
        time.sleep(1)
    return rows


def lab_processes(lab_dir: Path) -> list[str]:
    """Processes whose command line or environment names the lab's folder."""
    needle = str(lab_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or needle in environ:
            command = cmdline.replace(b"\0", b" ").decode(errors="replace")[:120]
            found.append(f"{entry.name} {command}")
    return found


def teardown(lab_dir: Path | None) -> list[str]:
    """`lab down`, then what is left: processes of the lab, namespaces of its block."""
    from skylift.lab.installation import down
    from skylift.lab.netns import lab_network_exists
    from skylift.lab.state import block_of

    if lab_dir:
        say(f"{len(lab_processes(lab_dir))} processes of the lab before lab down")
    say(f"lab down --name {LAB_NAME}")
    result = down(LAB_NAME)
    say(f"stopped: {', '.join(result['stopped']) or 'nothing'}")
    left: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = lab_processes(lab_dir) if lab_dir else []
        if lab_network_exists(block_of(LAB_NAME)):
            left.append(f"network namespaces of block {block_of(LAB_NAME)}")
        if not left:
            break
        time.sleep(0.5)
    return left


def start_upgrade(world, log: Path) -> subprocess.Popen:
    """`skylift upgrade run` as World.popen_upgrade starts it, its output kept in log."""
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "skylift.cli.main", *world.upgrade_argv()],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=world.env(), start_new_session=True)


def stop_process_group(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- the run ------------------------------------------------------------------------------

def follow_upgrade(driver, shots: Shots, proc: subprocess.Popen, notes: list[str]) -> None:
    """Poll the open upgrade page until the run ends. Shoot the API's window while it is open
    (again at each later step of the window, as long as the page shows fresh data: the last
    such shot is kept) and a step running after a third of the plan is done."""
    got_running = False
    window_step, window_clean = None, False  # the window shot kept: its step, fresh data
    window_note = ""
    deadline = time.monotonic() + UPGRADE_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        state = driver.execute_script(
            "const q = (s) => document.querySelector(s);"
            "const p = q('#upgrade-progress');"
            "return {now: q('#upgrade-now') && q('#upgrade-now').textContent,"
            " window: q('#upgrade-window') && q('#upgrade-window').textContent,"
            " done: p ? Number(p.value) : 0, total: p ? Number(p.max) : 0,"
            " error: !!q('#upgrade > .error')};")
        window_open = "so far" in (state["window"] or "")
        at = f"{state['now']} ({state['done']}/{state['total']} steps done)"
        if window_open and (window_step is None or (not state["error"] and (
                not window_clean or state["now"] != window_step))):
            shots.save("upgrade-window")
            window_step, window_clean = state["now"], not state["error"]
            window_note = (f"window shot at {at}"
                           + (", the MN not answering" if state["error"] else ""))
        elif (state["now"] and not got_running and not window_open and not state["error"]
              and state["total"] and state["done"] >= state["total"] // 3):
            shots.save("upgrade-running")
            got_running = True
            notes.append(f"running shot at {at}")
        time.sleep(0.2)
    notes.append(window_note or "the API window was never seen open by a poll: "
                                "no upgrade-window.png")
    if not got_running:
        notes.append("no step was caught running: no upgrade-running.png")


def run(out: Path) -> tuple[list[Path], list[str]]:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "upgrade")]
    from browser_kit import chrome, wait_for
    from console_kit import go, open_console, script_errors, sign_in, text
    from upgrade_world import World

    notes: list[str] = []
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="skylift-shots-"))
    os.environ["SKYLIFT_HOME"] = str(home)
    os.environ.pop("SKYLIFT_DB_PASSWORD", None)
    say(f"SKYLIFT_HOME={home} (if this script is killed: "
        f"SKYLIFT_HOME={home} skylift lab down --name {LAB_NAME})")
    from skylift.lab.state import lab_dir

    upgrade = None
    written: list[Path] = []
    try:
        say(f"lab up: {LAB_NAME}, release 3.7.1, {HOSTS} hosts, {VMS} VMs, and the upgrade "
            "artefacts")
        world = World(LAB_NAME, hosts=HOSTS, vms=VMS)
        url = world.state["mn"]["url"]
        token = Path(world.state["mn"]["token_file"]).read_text().strip()
        say(f"MN {url} ({world.state['mn']['mode']}, release {world.state['mn']['release']})")

        with chrome(WIDTH, HEIGHT) as driver, api_client(url, token) as client:
            shots = Shots(driver, out)
            written = shots.written
            open_console(driver, url)
            sign_in(driver, token)
            go(driver, "upgrade", "#upgrade-none")

            say("upgrade run (the page stays open)")
            before = client.get("/v1/console/assets").json()
            upgrade = start_upgrade(world, home / "upgrade.log")
            started = time.monotonic()
            follow_upgrade(driver, shots, upgrade, notes)
            code = upgrade.wait(timeout=30)
            say(f"upgrade ended with {code} after {time.monotonic() - started:.0f} s")
            if code != 0:
                tail = (home / "upgrade.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the upgrade failed ({code}):\n{tail}")

            after = client.get("/v1/console/assets").json()
            if after["assets"] == before["assets"]:
                notes.append("the console's assets did not change in the upgrade")
            wait_for(driver, lambda d: d.execute_script(LOADED_APP_JS) == after["assets"]["app.js"],
                     timeout=60)
            if driver.execute_script(HOW_LOADED) != "reload":
                notes.append("the page was not reloaded by itself")
            wait_for(driver, "#notice", 15)
            wait_for(driver, lambda d: text(d, "#upgrade-status") == "ok", timeout=30)
            wait_for(driver, "#upgrade-report caption", 15)
            settle(driver, wait_for, "#upgrade-proof")
            shots.save("upgrade-notice", full=False)
            shots.save("upgrade-after")

            say("waiting for every host to be Connected")
            rows = wait_hosts_connected(client)
            states = sorted({r.get("status") for r in rows})
            if states != ["Connected"]:
                notes.append(f"hosts not all Connected after 180 s: {states}")

            # the sign-in page of the upgraded MN (a fresh tab state), then every page
            open_console(driver, url)
            wait_for(driver, lambda d: "release 4" in (text(d, "#release") or ""), 15)
            shots.save("sign-in", full=False)
            sign_in(driver, token)
            settle(driver, wait_for, "#overview #agents-by-version")
            shots.save("overview")

            go(driver, "hosts", "#list-hosts table")
            settle(driver, wait_for, "#list-hosts table")
            shots.save("hosts")

            go(driver, "vms", "#list-vm_instances table")
            settle(driver, wait_for, "#list-vm_instances table")
            from selenium.webdriver.common.by import By

            stop = driver.find_element(By.CSS_SELECTOR, "button[aria-label^='Stop ']")
            vm_name = stop.get_attribute("aria-label")[len("Stop "):]
            stop.click()
            wait_for(driver, "#confirm")
            time.sleep(0.3)
            shots.save("vms")
            dialog = driver.find_element(By.ID, "confirm")
            dialog.find_element(By.XPATH, ".//button[normalize-space()='Cancel']").click()
            wait_for(driver, lambda d: not d.find_element(By.ID, "confirm").is_displayed())
            vm = next(v for v in client.get("/v1/vm_instances", params={"q": vm_name}).json()
                      ["items"] if v["name"] == vm_name)
            if vm["state"] != "Running":
                notes.append(f"{vm_name} is {vm['state']} after Cancel")

            for route, css in (("volumes", "#list-volumes table"),
                               ("networks", "#list-vpc_vrouters table"),
                               ("accounts", "#list-accounts table"),
                               ("settings", "#settings table")):
                go(driver, route, css)
                settle(driver, wait_for, css)
                shots.save(route)

            errors = script_errors(driver)
            if errors:
                notes.append(f"{len(errors)} JavaScript errors in the browser's console: "
                             + "; ".join(e["message"][:160] for e in errors[:3]))
    finally:
        stop_process_group(upgrade)
        left = teardown(lab_dir(LAB_NAME))
        if left:
            notes.append("left after lab down: " + "; ".join(left))
            say(f"NOT removed (something of the lab still runs): {home}")
        else:
            say("lab down: no process and no namespace of the lab left")
            shutil.rmtree(home, ignore_errors=True)
    return written, notes


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    ensure_venv()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the lab is torn down
    began = time.monotonic()
    written, notes = run(args.out)
    print()
    print(f"{'file':<60} {'bytes':>9}")
    print(f"{'-' * 60} {'-' * 9}")
    for path in sorted(written):
        size = path.stat().st_size
        flag = "  over 400 KB" if size > MAX_BYTES else ""
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"{str(shown):<60} {size:>9,}{flag}")
    print(f"{len(written)} files in {time.monotonic() - began:.0f} s")
    for note in notes:
        print(f"note: {note}")
    left = [n for n in notes if n.startswith("left after lab down")]
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
