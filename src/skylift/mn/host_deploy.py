"""Deploying a host's agent over SSH: what `skylift host add` and `POST /v1/hosts` with SSH
credentials do before the MN records and connects the host (ZStack's deploy playbook).

In order, and nothing on the host changes before the checks pass:
  survey   read-only: the host's OS release (/etc/os-release), its recorded QEMU and libvirt,
           whether an agent of this cloud already answers there
  checks   the OS release must be one the MN's local repository serves (the same-repo rule);
           the QEMU check against the cluster is the caller's (it knows the cluster)
  deploy   point the host at the MN's repository and install the agent's code from it
           (skylift.agent.bootstrap: the node needs only python3), give the node its identity,
           its TLS certificate (on stdin), its service, and start it
  wait     until the agent answers the MN over mutual TLS, reporting the code it runs

Every step is idempotent, so a host left half-way by a failure is added again by the same
command; `skylift host remove` takes it out.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from skylift.agent.bootstrap import bootstrap_argv, bootstrap_input
from skylift.agent.client import AsyncAgentClient
from skylift.agent.tls import INSTALL as TLS_INSTALL
from skylift.agent.tls import credentials_document
from skylift.agent.wire import agent_url
from skylift.errors import AgentDidNotReturn, HostOsNotServed, Refused, SkyliftError
from skylift.mn.agent_upgrade import DEFAULT_NODE_ROOT, RepoCatalog
from skylift.pki.trust import AgentTrust
from skylift.transport.base import Transport

OS_RELEASE_FILE = "/etc/os-release"


def os_release_of(text: str) -> str | None:
    """The OS release skylift names a host by, from its /etc/os-release.

    CentOS 7.N is `c7N` (the lineage's names: c72, c74, c76); any other system is ID and
    VERSION_ID run together (debian12), which no repository of the lineage serves.
    """
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"').strip("'")
    ident, version = fields.get("ID", ""), fields.get("VERSION_ID", "")
    if not ident:
        return None
    if ident == "centos" and version.startswith("7."):
        return "c7" + version.split(".")[1]
    return f"{ident}{version.replace('.', '')}"


def agent_runner(node_root: str) -> str:
    """The node's launcher of its installed agent code (skylift.agent.code_install)."""
    return f"{node_root}/agent/run"


def service_argv(node_root: str, action: str) -> list[str]:
    """The node's own service command: systemctl where systemd runs, else skylift's."""
    return [agent_runner(node_root), "-m", "skylift.agent.service", "--node-root", node_root,
            action]


@dataclass
class HostLogin:
    """How to reach a host over SSH; the password is never shown (repr) nor stored."""

    address: str
    port: int = 22
    user: str = "root"
    key_path: Path | None = None
    password: str | None = field(default=None, repr=False)
    host_key_fingerprint: str | None = None


@dataclass
class DeploySpec:
    """What to deploy on one host."""

    login: HostLogin
    uuid: str  # the host's identity in the inventory, and its node's
    agent_port: int
    repo_url: str  # the MN's repository as the host reaches it: https://mn:port/repo
    repo_ca: str | None  # the CA of the MN's HTTPS (PEM), None for plain HTTP
    node_root: str = DEFAULT_NODE_ROOT
    driver: str = "process"
    python: str = "python3"


@dataclass
class HostFacts:
    """What the survey read on the host (nothing was changed)."""

    os_release: str | None
    qemu: str | None
    libvirt: str | None
    agent_installed: bool

    def to_dict(self) -> dict:
        return {"os_release": self.os_release, "qemu": self.qemu, "libvirt": self.libvirt,
                "agent_installed": self.agent_installed}


_SURVEY = ("cat {os}; echo; echo '--skylift--'; cat {root}/packages.json 2>/dev/null; "
           "echo; echo '--skylift--'; test -x {run} && echo installed || true")


async def _run(t: Transport, argv: list[str], what: str, input: str | None = None,
               timeout: float = 300.0) -> str:
    result = await t.arun(argv, input=input, timeout=timeout)
    return result.check(what).stdout


async def survey(t: Transport, node_root: str) -> HostFacts:
    """Read the host's OS release, recorded packages and whether skylift's agent is there."""
    script = _SURVEY.format(os=OS_RELEASE_FILE, root=shlex.quote(node_root),
                            run=shlex.quote(agent_runner(node_root)))
    out = await _run(t, ["sh", "-c", script], "reading the host's OS release and packages")
    os_text, _, rest = out.partition("--skylift--")
    pkgs_text, _, installed = rest.partition("--skylift--")
    try:
        packages = json.loads(pkgs_text.strip() or "{}")
    except ValueError:
        packages = {}
    return HostFacts(os_release=os_release_of(os_text), qemu=packages.get("qemu-kvm"),
                     libvirt=packages.get("libvirt"),
                     agent_installed=installed.strip() == "installed")


def check_os_served(name: str, facts: HostFacts, catalog: RepoCatalog) -> None:
    """The same-repo rule: a host installs from the MN's repository of its own OS release."""
    if not catalog.serves(facts.os_release):
        served = ", ".join(catalog.repo.oses()) if catalog.repo else "none"
        raise HostOsNotServed(
            f"host {name} runs {facts.os_release or 'an unknown OS release'}, which the "
            "management node's local repository does not serve",
            why=f"a host installs its agent and packages from the MN's repository of its own "
                f"OS release, the same-repo rule (served: {served})",
            next="install the host with an OS release the MN serves, or add that release's "
                 "OS image to the MN's repository (`skylift repo update`)")


async def agent_answers(address: str, port: int, trust: AgentTrust | None,
                        timeout: float = 3.0) -> dict | None:
    """The version document of the agent at address, or None when none answers."""
    try:
        async with AsyncAgentClient(agent_url(address, port), timeout=timeout,
                                    trust=trust) as agent:
            return await agent.version()
    except SkyliftError:
        return None


async def deploy(spec: DeploySpec, t: Transport, *, os_release: str,
                 trust: AgentTrust | None, tls: bool,
                 on_step: Callable[[str], None] = lambda msg: None,
                 timeout: float = 60.0) -> dict:
    """Install and start the agent on the host (the checks passed); returns its version
    document, read over TLS when the agent was given a certificate."""
    root, login = spec.node_root, spec.login
    on_step(f"installing the agent's code from {spec.repo_url}")
    out = await _run(t, bootstrap_argv(root, spec.repo_url, os_release, python=spec.python),
                     "installing the agent from the MN's repository",
                     input=bootstrap_input(spec.repo_ca or ""))
    installed = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    on_step("giving the node its identity and service")
    run = agent_runner(root)
    await _run(t, service_argv(root, "configure") + [
        "--role", "host", "--uuid", spec.uuid, "--host", login.address,
        "--port", str(spec.agent_port), "--driver", spec.driver, "--os-release", os_release],
        "configuring the agent's service")
    if tls and trust is not None:
        on_step("giving the agent its certificate")
        await _run(t, [run, *TLS_INSTALL, "--node-root", root, "install"],
                   "installing the agent's certificate",
                   input=credentials_document(trust.issue(login.address)))
    on_step("starting the agent")
    await _run(t, service_argv(root, "restart"), "starting the agent")
    if tls and trust is not None:
        # a fresh certificate: the MN must not take a plain answer from this address again
        trust.pin(login.address)
    reply = await _wait(login.address, spec.agent_port, trust, timeout)
    reply.setdefault("installed", installed)
    return reply


async def _wait(address: str, port: int, trust: AgentTrust | None, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        reply = await agent_answers(address, port, trust, timeout=2.0)
        if reply is not None:
            return reply
        if time.monotonic() > deadline:
            raise AgentDidNotReturn(
                f"the agent deployed on {address} does not answer on port {port}",
                why=f"no answer within {timeout:.0f}s",
                next="read NODE_ROOT/agent.log on the host; `skylift host add` again "
                     "resumes the deployment")
        await asyncio.sleep(0.2)


def refuse_twice(address: str, uuid: str | None, reply: dict | None, name: str) -> None:
    """Adding a host whose agent of this cloud already answers is refused."""
    if reply is not None and (uuid is None or reply.get("uuid") == uuid):
        raise Refused(f"host {address} is already added ({name})",
                      why="its agent answers the management node",
                      next="remove it first (`skylift host remove`), or reconnect it")
