"""The local transport: the node is this machine (the embedded default and the lab)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from skylift.errors import TransportError
from skylift.secrets import without_secrets
from skylift.transport.base import Result, Transport


class LocalTransport(Transport):
    """Commands run as subprocesses; files are copied on the local file system."""

    name = "local"

    def run(self, argv: list[str], input: str | None = None,
            timeout: float | None = None) -> Result:
        try:
            # a command on a node gets none of this process's secrets (an MN's database
            # password would reach every package install otherwise)
            proc = subprocess.run(list(argv), input=input, capture_output=True, text=True,
                                  timeout=timeout, stdin=None if input is not None
                                  else subprocess.DEVNULL, env=without_secrets())
        except FileNotFoundError:
            raise TransportError(f"cannot run {argv[0]}: no such program",
                                 why="it is not installed or not on PATH",
                                 next="install it or give its full path") from None
        except subprocess.TimeoutExpired:
            raise TransportError(f"{argv[0]} timed out after {timeout:g}s on this machine",
                                 why="the command did not finish in time (it was killed)",
                                 next="look at the node's load, or allow a longer timeout") from None
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def put(self, local_path: Path, remote_path: str) -> None:
        target = Path(remote_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.close(fd)
        try:
            shutil.copy2(local_path, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise TransportError(f"cannot copy {local_path} to {remote_path}",
                                 why=exc.strerror or str(exc),
                                 next="check the paths and free space") from None
