"""What an install is asked to do (InstallSpec) and what it finds out before it acts
(InstallContext: the checks read it, the parts act on it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skylift.db.engine import Database

DEFAULT_PORT = 8080
DEFAULT_AGENT_PORT = 7070
DEFAULT_LISTEN = "0.0.0.0"  # hosts reach the MN: every address, over HTTPS (--tls auto)
TLS_MODES = ("auto", "on", "off")


@dataclass
class InstallSpec:
    """`skylift install`'s options. home None: $SKYLIFT_HOME (see skylift.config)."""

    installer: Path
    image: Path
    trusted_keys: list[str] = field(default_factory=list)  # besides config.toml's
    home: Path | None = None
    os_release: str | None = None  # None: detected from /etc/os-release
    db_url: str | None = None  # None: SQLite in $SKYLIFT_HOME/skylift.db
    db_password: str | None = None  # from --db-password-file or SKYLIFT_DB_PASSWORD
    db_password_file: Path | None = None  # the unit reads the password there
    listen: str = DEFAULT_LISTEN
    port: int = DEFAULT_PORT
    agent_port: int | None = None  # None: keep the cloud's (a new cloud: 7070)
    tls: str = "auto"
    units_dir: Path | None = None  # None: /etc/systemd/system under systemd, else home/units
    start: bool = True
    dry_run: bool = False
    skip_checks: list[str] = field(default_factory=list)
    systemd: bool | None = None  # None: whether systemd runs here (units.systemd_running)
    start_timeout: float = 60.0


def state_home(spec: InstallSpec) -> Path:
    """The state folder, not created (a refused install leaves nothing behind)."""
    if spec.home is not None:
        return Path(spec.home).absolute()
    env = os.environ.get("SKYLIFT_HOME")
    if env:
        return Path(env).absolute()
    if os.geteuid() == 0:
        return Path("/var/lib/skylift")
    return Path.home() / ".local" / "state" / "skylift"


@dataclass
class InstallContext:
    """Everything the checks look at and the parts use; filled before anything changes."""

    spec: InstallSpec
    home: Path
    keys: list[str]  # trusted key specs (absolute paths or inline)
    verified: Any = None  # VerifiedSet, or the ArtefactError verify raised
    release: str | None = None  # the installer's
    installer_manifest: dict = field(default_factory=dict)
    machine_os: str | None = None  # the MN's OS release (c74, ...), None: unknown
    machine_os_detected: str = ""  # what /etc/os-release says, for messages
    db: Database | None = None
    db_state: Any = None  # skylift.install.database.DbState
    record: dict | None = None  # install.json of a previous install
    systemd: bool = False
    own_mn_pid: int | None = None  # an MN of this state folder already on the port

    @property
    def node_root(self) -> Path:
        return self.home / "node"

    @property
    def units_dir(self) -> Path:
        if self.spec.units_dir is not None:
            return Path(self.spec.units_dir).absolute()
        from skylift.units import SYSTEMD_UNITS

        return SYSTEMD_UNITS if self.systemd else self.home / "units"

    @property
    def image_artefact(self):
        return self.verified.os_image() if self._ok() else None

    @property
    def installer_artefact(self):
        return self.verified.installer if self._ok() else None

    def _ok(self) -> bool:
        return self.verified is not None and not isinstance(self.verified, Exception)
