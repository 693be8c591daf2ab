"""The SSH endpoint of every farm host: asyncssh on the farm's SSH port, key auth only.

Like the agent API, one listener serves all hosts; the host is the local address the client
dialled. A farm host runs no shell: it understands the commands the MN and the upgrade send to
a node, run in-process against that host's node root:

    python -m skylift.agent.packages --node-root DIR install NAME VERSION   (and `list`)
    python -m skylift.agent.tls --node-root DIR install     (the certificate on stdin)
    <an agent restart command, see RESTART_COMMANDS>
    true, echo ...                                                          (probes of tools)

chained with `&&` or `;`, optionally wrapped in `/bin/sh -c '...'` (Ansible's raw module).
DIR is the node root as the MN knows it; on a farm host it always means the host's own node
root (every real host has its own file system, the farm's hosts share one).
"""

from __future__ import annotations

import asyncio
import json
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skylift.agent import packages as pkgs
from skylift.agent.tls import INSTALL as TLS_INSTALL
from skylift.agent.tls import install_from_document
from skylift.lab.farm_hosts import FarmHost
from skylift.transport.known_hosts import host_pattern
from skylift.transport.sshlib import asyncssh

PACKAGES_MODULE = "skylift.agent.packages"
# the ways an agent restart is asked for; a farm host's agent restarts in-process
RESTART_COMMANDS = (
    ("systemctl", "restart", "skylift-agent"),
    ("systemctl", "restart", "skylift-agent.service"),
)
RESTART_MODULE = ("-m", "skylift.agent", "restart")


def ensure_keys(base_dir: Path) -> tuple[Path, Path]:
    """The farm's host key and client key (Ed25519, made once, 0600); returns their paths."""
    paths = []
    for name in ("ssh_host_key", "client_key"):
        path = base_dir / name
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(str(path))
            key.write_public_key(str(path) + ".pub")
            path.chmod(0o600)
        paths.append(path)
    return paths[0], paths[1]


def write_known_hosts(path: Path, addresses: list[str], port: int, host_key_path: Path) -> None:
    """Pin the farm's host key for every host address (one line each, as OpenSSH writes)."""
    key = asyncssh.read_private_key(str(host_key_path))
    line = key.export_public_key("openssh").decode().split()
    key_text = f"{line[0]} {line[1]}"
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        for addr in addresses:
            fh.write(f"{host_pattern(addr, port)} {key_text}\n")
    tmp.chmod(0o600)
    tmp.replace(path)


def split_commands(command: str) -> list[list[str]]:
    """A command line as argv lists, split at `&&` and `;` (sh -c wrappers unwrapped)."""
    lex = shlex.shlex(command, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    argvs, current = [], []
    for tok in lex:
        if tok in ("&&", ";"):
            if current:
                argvs.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        argvs.append(current)
    out = []
    for argv in argvs:
        if len(argv) == 3 and argv[0] in ("/bin/sh", "sh", "/bin/bash", "bash") and argv[1] == "-c":
            out.extend(split_commands(argv[2]))
        else:
            out.append(argv)
    return out


class FarmShell:
    """Runs the commands a farm host understands; one per farm, shared by all hosts."""

    def __init__(self, hosts: dict[str, FarmHost], workers: int = 16) -> None:
        self.hosts = hosts
        # package installs fsync the package database: off the event loop
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="farm-ssh")

    async def run(self, host: FarmHost, command: str,
                  stdin: str = "") -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of a command line on host; the first command that
        reads standard input gets stdin."""
        out, err = [], []
        try:
            argvs = split_commands(command)
        except ValueError as exc:
            return 2, "", f"sh: syntax error: {exc}\n"
        status = 0
        for argv in argvs:
            status = await self._one(host, argv, out, err, stdin)
            if status != 0:
                break
        return status, "".join(out), "".join(err)

    async def _one(self, host: FarmHost, argv: list[str], out: list, err: list,
                   stdin: str = "") -> int:
        if argv == ["true"]:
            return 0
        if argv[0] == "echo":
            out.append(" ".join(argv[1:]) + "\n")
            return 0
        if tuple(argv) in RESTART_COMMANDS or _has(argv, RESTART_MODULE):
            host.restart_agent()
            return 0
        if _has(argv, ("-m", PACKAGES_MODULE)):
            return await self._packages(host, argv[argv.index(PACKAGES_MODULE) + 1:], out, err)
        if _has(argv, TLS_INSTALL) and argv[-1] == "install":
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self.pool, install_from_document, host.node_root, stdin)
            except ValueError as exc:
                err.append(f"skylift.agent.tls: {exc}\n")
                return 2
            return 0
        err.append(f"{argv[0]}: command not found on farm host {host.address}\n")
        return 127

    async def _packages(self, host: FarmHost, args: list[str], out: list, err: list) -> int:
        # the same arguments as `python -m skylift.agent.packages`; --node-root is the host's
        rest = list(args)
        if "--node-root" in rest:
            i = rest.index("--node-root")
            del rest[i:i + 2]
        loop = asyncio.get_running_loop()
        if rest[:1] == ["list"]:
            data = await loop.run_in_executor(self.pool, pkgs.read_packages, host.node_root)
            out.append(json.dumps(data, indent=2, sort_keys=True) + "\n")
            return 0
        if len(rest) == 3 and rest[0] == "install":
            previous = await loop.run_in_executor(self.pool, pkgs.install, host.node_root,
                                                  rest[1], rest[2])
            out.append(json.dumps({"name": rest[1], "version": rest[2],
                                   "previous": previous}) + "\n")
            return 0
        err.append("usage: python -m skylift.agent.packages --node-root DIR "
                   "{list | install NAME VERSION}\n")
        return 2


def _has(argv: list[str], seq: tuple[str, ...]) -> bool:
    n = len(seq)
    return any(tuple(argv[i:i + n]) == seq for i in range(len(argv) - n + 1))


async def serve_ssh(sock, hosts: dict[str, FarmHost], host_key: Path,
                    client_pub: Path) -> asyncssh.SSHAcceptor:
    """Serve every farm host's SSH endpoint on a listening socket."""
    shell = FarmShell(hosts)

    class Server(asyncssh.SSHServer):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            sockname = conn.get_extra_info("sockname") or ("",)
            if sockname[0] not in hosts:  # not a farm address: nobody listens there
                conn.abort()

    async def process(proc: asyncssh.SSHServerProcess) -> None:
        host = hosts.get((proc.get_extra_info("sockname") or ("",))[0])
        if host is None or not proc.command:
            proc.stderr.write("farm hosts run commands, not shells\n")
            proc.exit(1)
            return
        # only the certificate's install reads standard input (the MN sends EOF after it)
        stdin = await proc.stdin.read() if TLS_INSTALL[1] in proc.command else ""
        status, out, err = await shell.run(host, proc.command, stdin)
        if out:
            proc.stdout.write(out)
        if err:
            proc.stderr.write(err)
        proc.exit(status)

    # keys parsed once here, not per connection: given as paths, asyncssh re-reads and
    # re-parses both files on every accepted connection (14% of the farm's CPU at 1,000 hosts)
    return await asyncssh.listen(
        sock=sock, server_factory=Server,
        server_host_keys=[asyncssh.read_private_key(str(host_key))],
        authorized_client_keys=asyncssh.read_authorized_keys(str(client_pub)),
        process_factory=process,
        encoding="utf-8", allow_scp=False, sftp_factory=None, login_timeout=60,
        # a client that is gone must not hold a session forever
        keepalive_interval=0)
