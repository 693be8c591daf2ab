"""keepalived as a service of an HA cloud's MN: its configuration applied, started, reloaded,
stopped — by systemd where it runs, else as a process of its own found by its pid file.

    folder = home / "ha"
    apply(folder, config_text)     # checked with `keepalived -t`; started, or reloaded (HUP)
    running(folder)                # ProcessId of keepalived's parent, or None
    stop(folder)                   # SIGTERM: keepalived gives the VIP up before it ends

The files: keepalived.conf (0600), keepalived.pid, vrrp.pid, keepalived.log (detached). The
process runs `keepalived -n -l -D -G -P -f CONF -p PID -r VRRP_PID`: in the foreground of its
own session (its parent is the pid in keepalived.pid), logging to its log file, VRRP only
(-P: no checker process; the MN's health check is a vrrp_script).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from skylift.files import write_atomic
from skylift.ha.keepalived import HaError, config_test, keepalived_path
from skylift.processes import ProcessId, cmdline, stop as stop_process
from skylift.units import Unit, systemctl, systemd_running

UNIT_NAME = "skylift-keepalived"
UNITS_DIR = Path("/etc/systemd/system")
START_TIMEOUT = 10.0


def ha_folder(home: Path) -> Path:
    """Where an MN's keepalived keeps its files: $SKYLIFT_HOME/ha."""
    return Path(home) / "ha"


def files(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    return {"conf": folder / "keepalived.conf", "pid": folder / "keepalived.pid",
            "vrrp_pid": folder / "vrrp.pid", "log": folder / "keepalived.log"}


def argv(folder: Path) -> list[str]:
    f = files(folder)
    return [keepalived_path(), "-n", "-l", "-D", "-G", "-P", "-f", str(f["conf"]),
            "-p", str(f["pid"]), "-r", str(f["vrrp_pid"])]


def _from_pid_file(path: Path, conf: Path) -> ProcessId | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    proc = ProcessId.of(pid)
    # a recycled pid is another program: the configuration's path is in keepalived's argv
    return proc if proc is not None and str(conf).encode() in cmdline(pid) else None


def running(folder: Path) -> ProcessId | None:
    """keepalived's parent process of this folder's configuration, if it runs."""
    f = files(folder)
    return _from_pid_file(f["pid"], f["conf"])


def apply(folder: Path, config: str, timeout: float = START_TIMEOUT) -> str:
    """Write config, check it, then start keepalived or make the running one read it
    (SIGHUP: the VIP stays where it is); "started" or "reloaded". HaError when keepalived
    refuses the configuration (the previous one is left in force) or does not start."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    f = files(folder)
    candidate = folder / "keepalived.conf.new"
    write_atomic(candidate, config.encode(), mode=0o600)
    config_test(candidate)
    candidate.replace(f["conf"])
    if systemd_running():
        return _apply_systemd(folder)
    proc = running(folder)
    if proc is not None:
        _hup(proc.pid)
        return "reloaded"
    f["vrrp_pid"].unlink(missing_ok=True)
    with open(f["log"], "ab") as log:
        popen = subprocess.Popen(argv(folder), stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=log, start_new_session=True, close_fds=True, cwd="/")
    deadline = time.monotonic() + timeout
    while ProcessId.of(_pid_or_zero(f["vrrp_pid"])) is None:  # its VRRP child runs
        if popen.poll() is not None or time.monotonic() > deadline:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
            raise HaError("keepalived did not start", why=_tail(f["log"]),
                          next=f"look at {f['log']} and {f['conf']}")
        time.sleep(0.02)
    return "started"


def _pid_or_zero(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def _hup(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGHUP)


def _tail(path: Path, lines: int = 6) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no log"


def _unit(folder: Path) -> Unit:
    return Unit(UNIT_NAME, "keepalived of a skylift management node (the HA cloud's VIP)",
                tuple(argv(folder)), {})


def _systemctl(*args: str) -> None:
    systemctl(*args, unit=UNIT_NAME)


def _apply_systemd(folder: Path) -> str:
    unit = _unit(folder)
    path = UNITS_DIR / unit.file_name
    fresh = not path.exists() or path.read_text() != unit.text()
    if fresh:
        unit.write(UNITS_DIR)
        _systemctl("daemon-reload")
    active = subprocess.run(["systemctl", "is-active", "--quiet", unit.file_name]).returncode == 0
    if active and not fresh:
        _systemctl("reload-or-restart", unit.file_name)
        return "reloaded"
    _systemctl("enable", "--now", unit.file_name)
    return "started"


def stop(folder: Path, timeout: float = 10.0) -> str:
    """Stop keepalived (SIGTERM: it gives the VIP up first); "stopped" or "not running"."""
    if systemd_running() and (UNITS_DIR / _unit(folder).file_name).exists():
        _systemctl("disable", "--now", _unit(folder).file_name)
        return "stopped"
    proc = running(folder)
    if proc is None:
        return "not running"
    stop_process(proc, timeout)
    return "stopped"
