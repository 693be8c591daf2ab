"""Where a lab installation keeps its state: $SKYLIFT_HOME/lab/<name>/lab.json (0600)."""

from __future__ import annotations

import re
from pathlib import Path

from skylift.agent.store import read_json, write_json
from skylift.config import skylift_home
from skylift.errors import UsageError
from skylift.pki.trust import AgentTrust

LAB_FILE = "lab.json"


def lab_dir(name: str) -> Path:
    """The folder of lab installation `name` (not created)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name):
        raise UsageError(f"'{name}' is not a lab name",
                         next="use letters, digits, '.', '_' and '-' (up to 63)")
    return skylift_home() / "lab" / name


def read_state(name: str) -> dict | None:
    """The lab's recorded state, or None when it was never brought up."""
    return read_json(lab_dir(name) / LAB_FILE)


def write_state(name: str, state: dict) -> None:
    """Record the lab's state (mode 0600: it names the admin token file and the database)."""
    write_json(lab_dir(name) / LAB_FILE, state, mode=0o600)


def block_of(name: str) -> int:
    """The second octet of the lab's loopback addresses (127.B.x.y), stable per name.

    2..99: tests of other parts use 127.100.0.0 and above for their own agents.
    """
    return 2 + sum(name.encode()) * 31 % 98


def lab_trust(state: dict) -> AgentTrust | None:
    """How the lab talks to its agents: as the MN, with the cloud's CA (None before it had
    one)."""
    return AgentTrust.existing(Path(state["dir"]) / "mn-home")
