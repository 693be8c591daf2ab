"""A real OpenSSH sshd inside a lab namespace node (root; OpenSSH server installed).

    key, pub = client_keypair(lab_dir)                  # the lab's client key, for root logins
    sshd = start_sshd(net, node, authorized_keys=pub)   # listens on node.address:22
    SshTarget(node.address, 22, "root", key_path=key,
              host_key_fingerprint=sshd.host_key_fingerprint)
    known_hosts_line(sshd)                              # "198.18.B.11 ssh-ed25519 AAAA..."
    stop_sshd(sshd)

Each node's sshd has its own folder, base_dir/<name>-ssh/ (0700, beside the node root, not in
it: the agent owns its node root): an Ed25519 host key, sshd_config, sshd.pid and sshd.log
(LogLevel VERBOSE). It is started as `ip netns exec <ns> /usr/sbin/sshd -D -e -f CONFIG` in a
session of its own, so it outlives the process that started it and sees the node's network and
its /etc/netns files (os-release); `LabNetwork.remove()` ends it with everything else in the
namespace. Only key logins, root included (prohibit-password); no forwarding of any kind, so a
session cannot carry traffic beyond the lab.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from skylift.lab.errors import LabError
from skylift.lab.netns import LabNetwork, NsNode
from skylift.processes import ProcessId, cmdline, stop
from skylift.transport import known_hosts as kh
from skylift.transport.sshlib import asyncssh

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # sshd's privilege separation folder; it refuses to start without
HOST_KEY = "ssh_host_ed25519_key"
CLIENT_KEY = "id_ed25519"
START_TIMEOUT = 10.0
SSHD_MISSING_NEXT = "install the OpenSSH server (`apt-get install openssh-server`)"


@dataclass
class NodeSshd:
    """A running sshd of a lab node."""

    node: NsNode
    port: int
    pid: int
    host_key_fingerprint: str   # "SHA256:..." of its Ed25519 host key
    folder: Path = field(default_factory=Path)  # base_dir/<name>-ssh: key, config, pid, log
    start: int = 0              # the process's start time (with pid: its identity)

    @property
    def log(self) -> Path:
        return self.folder / "sshd.log"

    def to_dict(self) -> dict:
        """The sshd as lab.json keeps it."""
        return {"node": self.node.to_dict(), "port": self.port, "pid": self.pid,
                "start": self.start, "folder": str(self.folder),
                "host_key_fingerprint": self.host_key_fingerprint}

    @classmethod
    def from_dict(cls, data: dict) -> "NodeSshd":
        return cls(node=NsNode.from_dict(data["node"]), port=data["port"], pid=data["pid"],
                   host_key_fingerprint=data["host_key_fingerprint"],
                   folder=Path(data["folder"]), start=data.get("start", 0))


def _new_key(path: Path, comment: str) -> asyncssh.SSHKey:
    """An Ed25519 key pair at path and path.pub (0600), written under temporary names and
    renamed, the private key last: once it exists the pair is complete."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key("openssh"))
    pub = Path(f"{path}.pub")
    pub_tmp = Path(f"{tmp}.pub")
    pub_tmp.write_bytes(key.export_public_key("openssh"))
    pub_tmp.chmod(0o600)
    os.replace(pub_tmp, pub)
    os.replace(tmp, path)
    return key


def _private_folder(folder: Path) -> Path:
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


def client_keypair(folder: Path) -> tuple[Path, Path]:
    """The lab's Ed25519 client key for root logins on its nodes: (private, public), made once
    in folder (0600; an existing pair is kept)."""
    key = _private_folder(folder) / CLIENT_KEY
    if not key.exists() or not Path(f"{key}.pub").exists():
        _new_key(key, "skylift-lab-client")
    return key, Path(f"{key}.pub")


def ssh_folder(net: LabNetwork, node: NsNode) -> Path:
    """Where a node's sshd keeps its files: base_dir/<name>-ssh/."""
    return net.base_dir / f"{node.name}-ssh"


def sshd_config(node: NsNode, port: int, folder: Path, authorized_keys: Path) -> str:
    """The node's sshd_config: its address and port only, its own host key, key logins."""
    return "\n".join([
        "# written by skylift.lab.node_sshd for a lab namespace node",
        f"Port {port}",
        "AddressFamily inet",
        f"ListenAddress {node.address}",
        f"HostKey {folder / HOST_KEY}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {Path(authorized_keys).resolve()}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # StrictModes would refuse the authorized_keys file when a folder above it is group-
        # or world-writable — a lab under /tmp (tests) always is. The lab's key files are
        # root's, 0600, in a 0700 tree, so no one else can write them anyway.
        "StrictModes no",
        "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE",
        "UseDNS no",
        "PrintMotd no",
        # a session must not carry traffic anywhere: lab traffic stays on the machine
        "AllowTcpForwarding no",
        "AllowStreamLocalForwarding no",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "GatewayPorts no",
        "PermitUserEnvironment no",
        # the MN opens many sessions at once during a storm
        "MaxStartups 100:30:200",
        "",
    ])


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def start_sshd(net: LabNetwork, node: NsNode, authorized_keys: Path, port: int = 22,
               timeout: float = START_TIMEOUT) -> NodeSshd:
    """Start an OpenSSH sshd inside node's namespace, on node.address:port, trusting the keys
    in authorized_keys for root; returns once the port accepts connections."""
    if not os.access(SSHD, os.X_OK):
        raise LabError(f"cannot start sshd on lab node {node.name}: {SSHD} is missing",
                       why="namespace nodes run a real OpenSSH server", next=SSHD_MISSING_NEXT)
    if not Path(authorized_keys).is_file():
        raise LabError(f"cannot start sshd on lab node {node.name}: no {authorized_keys}",
                       why="its authorized_keys file names the keys allowed to log in",
                       next="make the lab's key with client_keypair(folder) and pass its .pub")
    PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder = _private_folder(ssh_folder(net, node))
    host_key = folder / HOST_KEY
    if host_key.exists():  # a node keeps its host key across restarts, as a real one does
        key = asyncssh.read_private_key(str(host_key))
    else:
        key = _new_key(host_key, f"root@{node.name}")
    config = folder / "sshd_config"
    config.write_text(sshd_config(node, port, folder, Path(authorized_keys)))
    config.chmod(0o600)
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        raise LabError(f"sshd refuses the config of lab node {node.name}",
                       why=check.stderr.strip(), next=f"look at {config}")
    log = open(folder / "sshd.log", "ab")
    try:
        proc = net.popen(node, [SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True, close_fds=True)
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while not _accepts(node.address, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            ended = (f"it exited with status {proc.returncode}" if proc.returncode > 0
                     else f"it did not listen within {timeout:g}s")
            raise LabError(f"sshd of lab node {node.name} did not listen on "
                           f"{node.address}:{port}",
                           why=f"{ended}; {_log_tail(folder / 'sshd.log')}",
                           next=f"look at {folder / 'sshd.log'}")
        time.sleep(0.01)
    ident = ProcessId.of(proc.pid)
    return NodeSshd(node=node, port=port, pid=proc.pid, folder=folder,
                    host_key_fingerprint=kh.fingerprint(key),
                    start=ident.start if ident else 0)


def stop_sshd(sshd: NodeSshd, timeout: float = 5.0) -> None:
    """Stop a node's sshd (SIGTERM, then SIGKILL); harmless when it is gone. Sessions it
    started end with their connections; LabNetwork.remove() ends anything left."""
    ident = ProcessId(sshd.pid, sshd.start) if sshd.start else ProcessId.of(sshd.pid)
    if ident is not None and (sshd.start or SSHD.encode() in cmdline(sshd.pid)):
        stop(ident, timeout)
    try:
        os.waitpid(sshd.pid, os.WNOHANG)  # reap it when it was our child
    except ChildProcessError:
        pass


def known_hosts_line(sshd: NodeSshd) -> str:
    """The node's host key as OpenSSH writes it in known_hosts: "<address> ssh-ed25519 AAAA..."
    ("[address]:port" when the port is not 22)."""
    pub = Path(f"{sshd.folder / HOST_KEY}.pub").read_text().split()
    return f"{kh.host_pattern(sshd.node.address, sshd.port)} {pub[0]} {pub[1]}"


def remove_ssh_folders(net: LabNetwork) -> None:
    """Delete every base_dir/<name>-ssh folder (keys, configs, logs) of the network's nodes."""
    for entry in net.base_dir.glob("*-ssh") if net.base_dir.is_dir() else []:
        shutil.rmtree(entry, ignore_errors=True)
