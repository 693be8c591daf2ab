"""The transport interface: how the management node and the upgrade tool reach a node.

A transport runs a command (argv, never a shell string built from pieces) and copies a file
onto the node. `local` runs on this machine; `ssh` reaches a node over OpenSSH.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from skylift.errors import OperationFailed


@dataclass(frozen=True)
class Result:
    """What a command did: its exit status (negative: killed by that signal) and its output."""

    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self, what: str) -> "Result":
        """self when the command succeeded, else OperationFailed naming what it was doing."""
        if not self.ok:
            tail = (self.stderr or self.stdout).strip().splitlines()[-3:]
            raise OperationFailed(f"{what} failed (exit status {self.exit_status})",
                                  why=" | ".join(tail) or "no output",
                                  next="fix the cause on the node and run again")
        return self


class Transport(ABC):
    """Run commands on one node and copy files to it."""

    name = "abstract"

    @abstractmethod
    def run(self, argv: list[str], input: str | None = None,
            timeout: float | None = None) -> Result:
        """Run argv on the node; input is fed to its stdin. A non-zero exit is not an error."""

    @abstractmethod
    def put(self, local_path: Path, remote_path: str) -> None:
        """Copy a local file to remote_path on the node, atomically (temp name, then rename)."""

    def close(self) -> None:
        """Release connections held for this node."""

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
