"""Where skylift keeps its state, and its configuration file.

All state lives under $SKYLIFT_HOME (default /var/lib/skylift as root, ~/.local/state/skylift
otherwise). The configuration is $SKYLIFT_HOME/config.toml; every key is optional.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from skylift.errors import ConfigError


def skylift_home() -> Path:
    """The state folder, created (mode 0700) on first use."""
    env = os.environ.get("SKYLIFT_HOME")
    if env:
        home = Path(env)
    elif os.geteuid() == 0:
        home = Path("/var/lib/skylift")
    else:
        home = Path.home() / ".local" / "state" / "skylift"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def upgrade_run_dir(home: Path) -> Path:
    """The folder of the current (or last) upgrade run: its journal, state, plan and report.

    Here, below the procedures, because the MN reads it too (its console's upgrade page).
    """
    return home / "upgrade" / "current"


@dataclass
class Config:
    """The settings read from config.toml."""

    db_url: str | None = None
    backup_dir: str | None = None
    trusted_keys: list[str] = field(default_factory=list)
    mn_url: str | None = None
    node_root: str | None = None
    home_dir: Path | None = None  # None: $SKYLIFT_HOME

    @property
    def home(self) -> Path:
        return self.home_dir or skylift_home()

    def backups(self) -> Path:
        """The backup folder (created, 0700)."""
        path = Path(self.backup_dir) if self.backup_dir else self.home / "backups"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def management_node_url(self) -> str:
        """Where the management node's API answers (default http://127.0.0.1:8080)."""
        return (self.mn_url or "http://127.0.0.1:8080").rstrip("/")

    def management_node_root(self) -> Path:
        """The MN's node folder: its node.json and local repository."""
        return Path(self.node_root) if self.node_root else self.home / "node"

    def default_db_url(self) -> str:
        """The database URL: the config's, else an embedded SQLite file under the state folder."""
        return self.db_url or f"sqlite:///{self.home / 'skylift.db'}"


def config_path(home: Path | None = None) -> Path:
    return (home or skylift_home()) / "config.toml"


def load_config(home: Path | None = None) -> Config:
    """Read config.toml (of `home`, default the state folder) if it exists; a malformed file
    is a ConfigError naming the line."""
    path = config_path(home)
    if not path.exists():
        return Config(home_dir=home)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"cannot read {path}",
            why=str(exc),
            next="fix the file (it is TOML) or remove it to use the defaults",
        ) from None
    _refuse_unknown(path, data)
    for key, value in data.items():
        want = list if key == "trusted_keys" else str
        if not isinstance(value, want) or (want is list and not all(
                isinstance(v, str) for v in value)):
            example = '["/path/to/release.pub"]' if want is list else '"..."'
            raise ConfigError(f"{path}: {key} must be a "
                              f"{'list of strings' if want is list else 'string'}",
                              why=f"it is {value!r}", next=f"write it as {key} = {example}")
    return Config(
        home_dir=home,
        db_url=data.get("db_url"),
        backup_dir=data.get("backup_dir"),
        trusted_keys=list(data.get("trusted_keys", [])),
        mn_url=data.get("mn_url"),
        node_root=data.get("node_root"),
    )


KEYS = ("db_url", "backup_dir", "trusted_keys", "mn_url", "node_root")


def _refuse_unknown(path: Path, data: dict) -> None:
    """A misspelt key must not be ignored: the default it leaves in place may be the wrong
    database."""
    import difflib

    unknown = [k for k in data if k not in KEYS]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, KEYS, n=1)
        hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
    raise ConfigError(f"{path}: unknown key{'s' if len(unknown) > 1 else ''} "
                      f"{', '.join(hints)}", why=f"the keys are {', '.join(KEYS)}",
                      next="fix the spelling or remove the key")
