"""A real OpenSSH sshd on a free loopback port, started and killed by the test.

Host and client keys are generated into tmp_path; sshd runs in the foreground (-D) as root,
and teardown kills it and every per-connection child it forked (no orphans).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


class Sshd:
    """One sshd under test: start, restart (e.g. with a new host key), stop."""

    def __init__(self, root: Path) -> None:
        if not os.path.exists(SSHD):
            pytest.fail("sshd is missing: apt-get install -y openssh-server "
                        "(scripts/services.sh does it)", pytrace=False)
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.host_key = root / "ssh_host_ed25519_key"
        self.client_key = root / "id_ed25519"
        _keygen(self.host_key)
        _keygen(self.client_key)
        (root / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self.config = root / "sshd_config"
        self.config.write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PermitRootLogin yes
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp internal-sftp
LogLevel VERBOSE
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        self.log = open(self.root / "sshd.log", "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        pytest.fail(f"sshd did not start: {(self.root / 'sshd.log').read_text()[-800:]}",
                    pytrace=False)

    def stop(self) -> None:
        if self.proc is None:
            return
        children = _children(self.proc.pid)  # per-connection sshd processes, own sessions
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None
        self.log.close()

    def rekey(self) -> None:
        """Give the node a new host key and restart sshd, as a reinstalled node would."""
        self.stop()
        _keygen(self.host_key)
        self.start()


@pytest.fixture
def sshd(tmp_path):
    server = Sshd(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()
