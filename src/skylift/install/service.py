"""The MN as a service: its unit (skylift-mn.service, from the very command line start_mn
runs), written and verified; then started by systemd where it runs, else by mn.launch."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from skylift.db.engine import PASSWORD_ENV
from skylift.mn.https import WILDCARDS, wants_tls
from skylift.mn.launch import mn_argv, start_mn, wait_ready
from skylift.units import Unit, systemctl, verify

UNIT_NAME = "skylift-mn"


@dataclass(frozen=True)
class MnCommand:
    """How the MN runs: the arguments of mn_argv / start_mn, and its environment."""

    home: Path
    db_url: str  # without password
    host: str
    port: int
    node_root: Path
    tls: str
    password_file: Path | None
    share_hosts: bool = False  # one of an HA cloud's MNs (skylift.install.ha_member)

    def kwargs(self) -> dict:
        return {"port": self.port, "host": self.host, "password_file": self.password_file,
                "node_root": self.node_root, "tls": self.tls, "share_hosts": self.share_hosts}

    def to_dict(self) -> dict:
        """What install.json keeps, so the MN can be started again as it was (no secret)."""
        return {"db_url": self.db_url, "host": self.host, "port": self.port,
                "node_root": str(self.node_root), "tls": self.tls,
                "password_file": str(self.password_file) if self.password_file else None,
                "share_hosts": self.share_hosts, "python": sys.executable}

    @classmethod
    def from_dict(cls, home: Path, data: dict) -> "MnCommand":
        return cls(home, data["db_url"], data["host"], int(data["port"]),
                   Path(data["node_root"]), data["tls"],
                   Path(data["password_file"]) if data.get("password_file") else None,
                   bool(data.get("share_hosts")))

    def argv(self) -> list[str]:
        return mn_argv(self.db_url, **self.kwargs())

    def environment(self) -> dict[str, str]:
        """SKYLIFT_HOME, and the current slot first on the import path (as the upgrade's
        start_next does): the MN runs the installed release's code."""
        return {"SKYLIFT_HOME": str(self.home),
                "PYTHONPATH": str(self.home / "mn" / "slots" / "current")}

    def unit(self) -> Unit:
        return Unit(UNIT_NAME, "skylift management node", tuple(self.argv()),
                    self.environment())

    @property
    def url(self) -> str:
        """Where clients on this machine reach the MN (loopback for a wildcard address)."""
        host = "127.0.0.1" if self.host in WILDCARDS else self.host
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if wants_tls(self.tls, self.host) else "http"
        return f"{scheme}://{shown}:{self.port}"


def write_unit(cmd: MnCommand, folder: Path) -> tuple[Path, bool]:
    """Write the unit when its text changes; (path, whether it was written)."""
    unit = cmd.unit()
    path = folder / unit.file_name
    if path.exists() and path.read_text() == unit.text():
        return path, False
    return unit.write(folder), True


def verify_unit(path: Path) -> list[str]:
    """What systemd-analyze finds wrong with the unit (empty: nothing)."""
    return verify(path)


def _systemctl(*args: str) -> None:
    systemctl(*args, unit=UNIT_NAME,
              next=f"read `journalctl -u {UNIT_NAME}`, fix it, and run install again")


def start_with_systemd(cmd: MnCommand, timeout: float) -> dict:
    """daemon-reload, enable --now; waits for the MN to answer."""
    _systemctl("daemon-reload")
    _systemctl("enable", "--now", f"{UNIT_NAME}.service")
    version = wait_ready(cmd.url, timeout=timeout, home=cmd.home)
    return {"how": "systemd", "unit": f"{UNIT_NAME}.service", "pid": version.get("pid"),
            "log": f"journalctl -u {UNIT_NAME}"}


def start_detached(cmd: MnCommand, password: str | None, timeout: float) -> dict:
    """Start the unit's command line where systemd does not run (detached, waits ready)."""
    env = cmd.environment()
    if password is not None and cmd.password_file is None:
        env[PASSWORD_ENV] = password
    # an MN on every address is reached on loopback here (its certificate names it)
    reach = "127.0.0.1" if cmd.host in WILDCARDS else None
    handle = start_mn(cmd.db_url, env=env, timeout=timeout, reach_at=reach, **cmd.kwargs())
    return {"how": "mn.launch", "pid": handle.pid, "log": str(handle.log_path),
            "instance": handle.instance}

