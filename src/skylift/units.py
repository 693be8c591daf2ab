"""systemd service units of skylift's daemons, and whether systemd runs here.

A unit is declared once (Unit: its command line, environment, how it is stopped) and used two
ways: as a unit file that `systemd-analyze verify` accepts, where systemd runs; and, where it
does not (containers, CI, the lab's namespaces), as the very command line skylift's own node
commands start (skylift.agent.service, skylift.install). So the two never drift apart.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from skylift.errors import ConfigError, OperationFailed

SYSTEMD_UNITS = Path("/etc/systemd/system")


def systemd_running() -> bool:
    """Whether systemd is this machine's service manager (sd_booted(3)'s test)."""
    return Path("/run/systemd/system").is_dir()


@dataclass(frozen=True)
class Unit:
    """One service: what runs, with which environment, and how it is stopped."""

    name: str  # "skylift-agent": the file is <name>.service
    description: str
    argv: tuple[str, ...]
    environment: dict[str, str] = field(default_factory=dict)
    # an agent's VMs outlive it (they belong to the hypervisor): stopping the unit must stop
    # the main process only, never the rest of its cgroup
    kill_mode: str = "process"
    working_directory: str = "/"
    after: tuple[str, ...] = ("network-online.target",)

    @property
    def file_name(self) -> str:
        return f"{self.name}.service"

    def text(self) -> str:
        """The unit file."""
        env = "".join(f"Environment={shlex.quote(f'{k}={v}')}\n"
                      for k, v in sorted(self.environment.items()))
        after = " ".join(self.after)
        return (
            "[Unit]\n"
            f"Description={self.description}\n"
            f"Wants={after}\nAfter={after}\n\n"
            "[Service]\n"
            "Type=simple\n"
            f"ExecStart={shlex.join(self.argv)}\n"
            f"{env}"
            f"WorkingDirectory={self.working_directory}\n"
            f"KillMode={self.kill_mode}\n"
            "Restart=on-failure\nRestartSec=2\n"
            "TimeoutStopSec=30\n\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n"
        )

    def write(self, folder: Path) -> Path:
        """Write the unit file into folder (0644, atomically); returns its path."""
        from skylift.files import write_atomic

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.file_name
        write_atomic(path, self.text().encode(), mode=0o644)
        return path


def verify(path: Path) -> list[str]:
    """What `systemd-analyze verify` finds wrong with a unit file (empty: nothing)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        raise ConfigError("cannot verify service units: systemd-analyze is not installed",
                          why="it comes with Debian's systemd package",
                          next="apt-get install systemd (scripts/services.sh does it)")
    done = subprocess.run([tool, "verify", "--man=no", str(path)], capture_output=True,
                          text=True, timeout=60)
    # it warns about the machine (no /run/systemd, an unset boot id) as well as the unit:
    # only lines naming the unit's file are findings about it
    lines = (done.stdout + done.stderr).splitlines()
    found = [ln for ln in lines if path.name in ln or str(path) in ln]
    if done.returncode and not found:
        found = lines or [f"systemd-analyze verify exited with status {done.returncode}"]
    return found


def systemctl(*args: str, unit: str, next: str | None = None, timeout: float = 120.0) -> None:
    """`systemctl ARGS`; OperationFailed with systemd's words when it fails (next: what to
    do, by default read the unit's journal)."""
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise OperationFailed(f"systemctl {' '.join(args)} failed",
                              why=(done.stderr or done.stdout).strip()[-500:],
                              next=next or f"read `journalctl -u {unit}`")
