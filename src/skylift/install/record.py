"""What is installed ($SKYLIFT_HOME/install.json, written last), the marker of an install
under way (install.pending.json, written first), and config.toml."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

from skylift.config import KEYS, config_path
from skylift.errors import ConfigError
from skylift.files import write_atomic, write_json

RECORD = "install.json"
PENDING = "install.pending.json"


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}", why=str(exc),
                          next="remove the file if it is damaged, then run install again")


def read_record(home: Path) -> dict | None:
    """The record of what is installed here (None: nothing is, or an install never finished)."""
    return read_json(home / RECORD)


def write_record(home: Path, data: dict) -> Path:
    data = dict(data, installed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    write_json(home / RECORD, data)
    (home / PENDING).unlink(missing_ok=True)
    return home / RECORD


def read_pending(home: Path) -> dict | None:
    return read_json(home / PENDING)


def write_pending(home: Path, data: dict) -> None:
    write_json(home / PENDING, data)


def _toml_value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string here


def config_text(home: Path, settings: dict) -> str:
    """config.toml with settings over what the file has (other keys, e.g. backup_dir, kept)."""
    path = config_path(home)
    have = {}
    if path.exists():
        try:
            have = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"cannot read {path}", why=str(exc),
                              next="fix the file (it is TOML) or remove it") from None
    merged = have | settings
    lines = ["# written by `skylift install`; the database password is never here"]
    lines += [f"{key} = {_toml_value(merged[key])}" for key in KEYS if key in merged]
    return "\n".join(lines) + "\n"


def write_config(home: Path, settings: dict) -> bool:
    """Write config.toml (0600) when its text changes; returns whether it did."""
    path = config_path(home)
    text = config_text(home, settings)
    if path.exists() and path.read_text() == text:
        return False
    write_atomic(path, text.encode())
    return True
