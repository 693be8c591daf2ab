"""Agent and host-package upgrade on connect: what the MN's local repo offers, and
how the MN installs it on a node through a transport.

On every connect the MN compares the agent's reported `agent_version` with the skylift-agent
package of its local repo; an older agent gets the package pushed and installed, then is
restarted (its VMs keep running: they belong to the hypervisor). An agent that can
(skylift.agent.self_upgrade: its release has it, it answered over mutual TLS) is instead
ordered to install it from the MN's repository itself and restart: one request, no SSH. One
that hands its socket to the new agent (skylift.agent.handover) answers with the new agent's
version document, and the MN has no restarted agent to reach. When the global setting
host.updatePkgWhenConnect is true, the host's libvirt and QEMU are brought to the repo's
versions too, with the lineage's rule that an existing host never goes past QEMU 2.12
(`lineage.UPGRADED_HOST_QEMU`): QEMU 4.2 is for new installs only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from skylift.agent import packages as node_pkgs
from skylift.agent.client import AsyncAgentClient
from skylift.agent.tls import INSTALL as TLS_INSTALL
from skylift.agent.tls import credentials_document
from skylift.errors import (AgentDidNotReturn, AgentError, OsReleaseNotServed,
                            PackageDigestMismatch, SkyliftError)
from skylift.files import sha256
from skylift.lineage import UPGRADED_HOST_QEMU
from skylift.mn.resources import HOST, Resource
from skylift.pki.authority import Credentials
from skylift.pki.trust import AgentTrust, install_node_tls
from skylift.release.manifest import PackageEntry, RepoIndex
from skylift.repo.local import LocalRepo
from skylift.transport import LocalTransport, Transport

AGENT = node_pkgs.AGENT_PACKAGE
# Names in the repo -> names in a node's package database.
NODE_NAME = {"qemu": node_pkgs.QEMU_PACKAGE, "libvirt": node_pkgs.LIBVIRT_PACKAGE,
             AGENT: AGENT}
DEFAULT_NODE_ROOT = "/var/lib/skylift/node"  # on a real node reached over ssh
DEFAULT_RESTART = ["systemctl", "restart", "skylift-agent"]
log = logging.getLogger(__name__)


def vkey(version: str | None) -> tuple[int, ...]:
    """A sortable key of a package version; an unknown or odd version sorts oldest."""
    return tuple(int(p) for p in re.findall(r"\d+", version or ""))


class RepoCatalog:
    """What the MN's local repository (a node root holding repo/<os>/...) offers per OS."""

    def __init__(self, repo_root: Path | str | None) -> None:
        self.repo = LocalRepo(repo_root) if repo_root else None
        self._index: dict[str | None, RepoIndex | None] = {}
        self._dirs: dict[str | None, Path | None] = {}
        self._checked: set[Path] = set()  # package files whose digest matched the index
        self._serves_any: bool | None = None
        self._serves: dict[str, bool] = {}

    def _load(self, os: str | None) -> None:
        if os in self._index:
            return
        index, where = None, None
        if self.repo is not None:
            # the node's own OS first; an agent-only node (storage) takes any repo
            for candidate in ([os] if os else []) + self.repo.oses():
                cur = self.repo.current_dir(candidate)
                if cur and (cur / "repodata" / "index.json").is_file():
                    index = RepoIndex.model_validate_json(
                        (cur / "repodata" / "index.json").read_text())
                    where = cur
                    break
        self._index[os], self._dirs[os] = index, where

    def serves_any(self) -> bool:
        """Whether the repository serves any OS release at all (an MN without one upgrades
        nothing)."""
        if self._serves_any is None:
            self._serves_any = self.repo is not None and any(
                self.serves(os) for os in self.repo.oses())
        return self._serves_any

    def serves(self, os: str | None) -> bool:
        """Whether the repository has a repo of this very OS release (looked up once, as its
        index is: every connect asks)."""
        if self.repo is None or not os:
            return False
        if os not in self._serves:
            cur = self.repo.current_dir(os)
            self._serves[os] = bool(cur and (cur / "repodata" / "index.json").is_file())
        return self._serves[os]

    def index(self, os: str | None) -> RepoIndex | None:
        """The index of the repo serving this OS release (None when there is none)."""
        self._load(os)
        return self._index[os]

    def agent_version(self, os: str | None) -> str | None:
        """The skylift-agent version the repo carries."""
        index = self.index(os)
        pkg = index.find(AGENT) if index else None
        return pkg.version if pkg else None

    def package_file(self, os: str | None, pkg: PackageEntry) -> Path | None:
        """The package's file in the repo, when present; its digest must be the index's."""
        self._load(os)
        where = self._dirs[os]
        path = where / "packages" / pkg.file if where else None
        if not (path and path.is_file()):
            return None
        if path not in self._checked:
            if sha256(path) != pkg.sha256:
                raise PackageDigestMismatch(
                    f"the repository's {pkg.file} is not the package its index names",
                    why=f"its sha256 differs from the index's ({where / 'repodata'})",
                    next="refresh the local repository from a verified OS image "
                         "(`skylift repo update`); the MN retries the node afterwards")
            self._checked.add(path)
        return path

    def host_updates(self, os: str | None, qemu: str | None,
                     libvirt: str | None) -> list[PackageEntry]:
        """The repo packages a host with these versions should get (libvirt, QEMU)."""
        index = self.index(os)
        if index is None:
            return []
        out = []
        libvirts = [p for p in index.packages if p.name == "libvirt"]
        if libvirts:
            best = max(libvirts, key=lambda p: vkey(p.version))
            if vkey(best.version) > vkey(libvirt):
                out.append(best)
        # an existing host keeps at most QEMU 2.12; 4.2 is for new installs (lineage 4.3.12)
        qemus = [p for p in index.packages
                 if p.name == "qemu" and vkey(p.version) <= vkey(UPGRADED_HOST_QEMU)]
        if qemus:
            best = max(qemus, key=lambda p: vkey(p.version))
            if vkey(best.version) > vkey(qemu):
                out.append(best)
        return out


class NodeOps:
    """How the MN acts on a node: push and install a package, restart the agent.

    transport_for(resource) gives the node's transport (default: this machine); node_root_for
    (a mapping uuid -> folder, or a callable) says where the node keeps its state, as the lab
    knows it. Over the local transport an agent is restarted with skylift.agent.launch;
    over any other, with restart_argv(resource, node_root) (default systemctl).
    """

    def __init__(self, *, transport_for: Callable[[Resource], Transport] | None = None,
                 node_root_for: Mapping[str, Path | str] | Callable[[Resource], Path | str |
                                                                    None] | None = None,
                 restart_argv: Callable[[Resource, str], list[str]] | None = None,
                 python: str | None = None, workers: int = 16,
                 python_for: Callable[[Resource, str], str | None] | None = None,
                 command_timeout: float = 120.0, push: bool | None = None) -> None:
        self.transport_for = transport_for
        self.node_root_for = node_root_for
        self.restart_argv = restart_argv or (lambda res, root: list(DEFAULT_RESTART))
        self.python = python
        # a node whose agent runs installed code names its own launcher (skylift.agent.run)
        self.python_for = python_for
        self.command_timeout = command_timeout
        self.push = push  # copy the package file to the node first (None: over local only)
        self.local = LocalTransport()
        # restarts and local commands block; a pool of their own keeps the loop's default free
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nodeops")
        self.handles: dict[str, object] = {}  # agents this MN (re)started locally, by uuid

    def transport(self, res: Resource) -> Transport:
        return self.transport_for(res) if self.transport_for else self.local

    def node_root(self, res: Resource) -> str:
        """The node root on the node; refused when the local node's root is not known."""
        nr = self.node_root_for
        root = nr(res) if callable(nr) else (nr or {}).get(res.uuid)
        if root:
            return str(root)
        if self.transport_for is not None and not self._is_local(self.transport(res)):
            return DEFAULT_NODE_ROOT
        raise AgentError(f"cannot upgrade the agent of {res.kind} {res.name}",
                         why="its node root is not known to this management node",
                         next="give the connection manager node roots (node_root_for)")

    def _is_local(self, t: Transport) -> bool:
        return isinstance(t, LocalTransport)

    async def _blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run(self, res: Resource, argv: list[str], what: str,
                  input: str | None = None) -> str:
        """Run argv on the node; OperationFailed (naming `what`) when it fails."""
        t = self.transport(res)
        if hasattr(t, "arun"):
            result = await t.arun(argv, input=input, timeout=self.command_timeout)
        else:
            result = await self._blocking(lambda: t.run(argv, input=input,
                                                        timeout=self.command_timeout))
        return result.check(f"{what} on {res.kind} {res.name}").stdout

    async def _push(self, res: Resource, t: Transport, root: str, file: Path | None) -> None:
        # copy the package file to the node first (by default only over the local transport)
        if file is not None and (self.push or (self.push is None and self._is_local(t))):
            remote = f"{root}/cache/{file.name}"
            if hasattr(t, "aput"):
                await t.aput(file, remote)
            else:
                await self._blocking(t.put, file, remote)

    def _install_argv(self, t: Transport, res: Resource, root: str,
                      pkg: PackageEntry) -> list[str]:
        return [self._python(t, res, root), "-m", "skylift.agent.packages", "--node-root", root,
                "install",
                NODE_NAME.get(pkg.name, pkg.name), pkg.version]

    async def install(self, res: Resource, pkg: PackageEntry, file: Path | None) -> None:
        """Push the package file (when the repo has it) and install it into the node."""
        t, root = self.transport(res), self.node_root(res)
        await self._push(res, t, root, file)
        await self.run(res, self._install_argv(t, res, root, pkg),
                       f"installing {pkg.name} {pkg.version}")

    def _python(self, t: Transport, res: Resource, root: str) -> str:
        own = self.python_for(res, root) if self.python_for else None
        return own or self.python or (sys.executable if self._is_local(t) else "python3")

    async def install_and_restart(self, res: Resource, pkg: PackageEntry,
                                  file: Path | None, tls: Credentials | None = None) -> None:
        """Install pkg (and give the agent its certificate, when tls), then restart the agent:
        over a remote transport as one `sh -c 'tls && install && restart'` session (the
        restart runs only when the rest succeeded), the certificate's key on standard input.
        One SSH session instead of several saves a channel open, an exit status and a round
        trip per node (docs/benchmarks.md)."""
        t = self.transport(res)
        if self._is_local(t):  # a local agent is restarted by skylift.agent.launch
            if tls is not None:
                await self._blocking(install_node_tls, Path(self.node_root(res)), tls)
            await self.install(res, pkg, file)
            await self.restart_agent(res)
            return
        root = self.node_root(res)
        await self._push(res, t, root, file)
        steps = [self._install_argv(t, res, root, pkg), self.restart_argv(res, root)]
        if tls is not None:
            steps.insert(0, [self._python(t, res, root), *TLS_INSTALL, "--node-root", root,
                             "install"])
        chain = " && ".join(shlex.join(argv) for argv in steps)
        await self.run(res, ["sh", "-c", chain],
                       f"installing {pkg.name} {pkg.version} and restarting the agent",
                       input=credentials_document(tls) if tls is not None else None)

    async def release(self, res: Resource) -> None:
        """Close the node's transport connection once the upgrade is done: an MN must not
        hold an SSH connection to each of 10,000 nodes (nor make each node keep one)."""
        t = self.transport(res)
        if hasattr(t, "aclose"):
            await t.aclose()

    async def restart_agent(self, res: Resource) -> None:
        """Restart the node's agent so it runs the version now installed."""
        t, root = self.transport(res), self.node_root(res)
        if not self._is_local(t):
            await self.run(res, self.restart_argv(res, root), "restarting the agent")
            return
        from skylift.agent.launch import find_agent, restart_agent

        handle = self.handles.get(res.uuid)
        if handle is None or not handle.alive():
            handle = find_agent(Path(root))
        if handle is None:
            raise AgentError(f"the agent of {res.kind} {res.name} is not running in {root}",
                             next="start it, then reconnect the resource")
        self.handles[res.uuid] = await self._blocking(restart_agent, handle)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class ConnectOutcome:
    """What connecting one resource did beyond the handshake."""

    reply: dict
    agent_upgraded_from: str | None = None
    packages: dict[str, str] = field(default_factory=dict)  # node package name -> new version


async def wait_for_version(client: AsyncAgentClient, want: str, timeout: float) -> dict:
    """Poll the restarted agent until it reports version `want`."""
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while True:
        try:
            reply = await client.version(timeout=2.0)
            if reply.get("agent_version") == want:
                return reply
            last = f"it reports {reply.get('agent_version')}"
        except SkyliftError as exc:
            last = exc.what
        if time.monotonic() > deadline:
            raise AgentDidNotReturn(f"the agent at {client.base_url} did not come back at {want}",
                             why=last, next="read the node's agent.log")
        await asyncio.sleep(0.1)


async def upgrade_on_connect(res: Resource, reply: dict, client: AsyncAgentClient,
                             catalog: RepoCatalog, ops: NodeOps, *, update_packages: bool,
                             restart_timeout: float = 30.0,
                             trust: AgentTrust | None = None) -> ConnectOutcome:
    """Bring an agent (and, when asked, a host's packages) to the repo's versions; an agent
    upgraded from a release without TLS is given its certificate on the way (trust)."""
    outcome = ConnectOutcome(reply)
    os = reply.get("os_release") or res.os_release
    if res.kind == HOST and catalog.serves_any() and not catalog.serves(os):
        raise OsReleaseNotServed(
            f"host {res.name} runs {os or 'an unknown OS release'}, which the management "
            "node's local repository does not serve",
            why="a host installs its packages from the MN's repository of its own OS release "
                "(the same-repo rule)",
            next="reinstall the host with the MN's OS release, or add that release's OS "
                 "image to the MN's repository (`skylift repo update`)")
    want = catalog.agent_version(os)
    have = reply.get("agent_version")
    touched = False  # whether the node's transport was used (then its connection is closed)
    try:
        if want and vkey(have) < vkey(want):
            index = catalog.index(os)
            pkg = index.find(AGENT, want)
            answer = None
            if reply.get("self_upgrade") and client.schemes.over_tls():
                # the agent downloads the package and checks it against pkg.sha256 itself
                answer = await _ordered(client, pkg)
            if answer is None:
                touched = True
                await _upgrade_over_transport(res, pkg, catalog.package_file(os, pkg), client,
                                              ops, trust)
            successor = (answer or {}).get("successor") or {}
            if successor.get("agent_version") == want:  # handed over: it serves already
                outcome.reply = successor
            else:  # it restarts: reach the new agent
                outcome.reply = await wait_for_version(client, want, restart_timeout)
            outcome.agent_upgraded_from = have or "unknown"
        if update_packages and res.kind == HOST and res.libvirt_auto_upgrade:
            updates = catalog.host_updates(os, outcome.reply.get("qemu"),
                                           outcome.reply.get("libvirt"))
            for pkg in updates:
                touched = True
                await ops.install(res, pkg, catalog.package_file(os, pkg))
                outcome.packages[NODE_NAME[pkg.name]] = pkg.version
            if updates:  # the agent reads the package database per request: no restart needed
                outcome.reply = await client.version()
    finally:
        if touched:
            await ops.release(res)
    return outcome


async def _ordered(client: AsyncAgentClient, pkg: PackageEntry) -> dict | None:
    """Order an agent that can to upgrade itself (one request over mutual TLS, no SSH); its
    answer (with "successor", the new agent's version document, when it handed its socket
    over), or None when it refused or failed before restarting (then it goes over SSH)."""
    try:
        return await client.upgrade_self(pkg.version, pkg.sha256)
    except SkyliftError as exc:
        log.warning("agent at %s did not take the upgrade order (%s): upgrading it over SSH",
                    client.base_url, exc.what)
        return None


async def _upgrade_over_transport(res: Resource, pkg: PackageEntry, file: Path | None,
                                  client: AsyncAgentClient, ops: NodeOps,
                                  trust: AgentTrust | None) -> None:
    """Install the agent package on the node over its transport (SSH) and restart it."""
    # a fresh certificate for the address the MN dialled: every such upgrade rotates it,
    # and an agent of a release before TLS gets its first. Once the restarted agent
    # answers over TLS the client pins it (no plain answer is taken there again).
    tls = trust.issue(res.address) if trust is not None else None
    await ops.install_and_restart(res, pkg, file, tls=tls)
    if tls is not None:
        client.schemes.expect_tls()
