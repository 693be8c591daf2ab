"""Adding a host over SSH, start to end: survey and checks, deployment, and the node registry.

Shared by `POST /v1/hosts` (with SSH credentials: the MN deploys, then records and connects
the host) and `skylift host add` against an MN that cannot record hosts yet (an older
release's cloud in maintenance mode: the host is already in its inventory).

A host added with a password is given the MN's own SSH key (as ZStack's deploy does), so the
MN reaches it later by key: no password is ever stored.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from typing import Callable

from skylift.mn.agent_upgrade import RepoCatalog
from skylift.mn.host_deploy import (DeploySpec, HostFacts, agent_answers, check_os_served,
                                    deploy, refuse_twice, survey)
from skylift.mn.nodes import SKYLIFT, NodeRegistry, register_node, registry_path
from skylift.pki.authority import CA_CERT, pki_dir
from skylift.pki.trust import AgentTrust

MN_KEY = "id_ed25519"
_AUTHORIZE = ('umask 077; mkdir -p "$HOME/.ssh"; read -r key; '
              'touch "$HOME/.ssh/authorized_keys"; '
              'grep -qxF "$key" "$HOME/.ssh/authorized_keys" || '
              'echo "$key" >> "$HOME/.ssh/authorized_keys"')


@dataclass
class AddResult:
    """What adding a host found and did."""

    facts: HostFacts
    agent: dict  # the agent's version document (code version and digest included)
    registry_entry: dict


def mn_ssh_key(home: Path) -> Path:
    """The MN's own SSH key (made once, 0600): how it reaches hosts added with a password."""
    path = home / "mn" / "ssh" / MN_KEY
    if not path.exists():
        from skylift.files import write_atomic
        from skylift.transport.sshlib import asyncssh

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="skylift-mn")
        write_atomic(path.with_suffix(".pub"), key.export_public_key(), mode=0o644)
        write_atomic(path, key.export_private_key(), mode=0o600)
    return path


def repo_url_for(mn_url: str, host: str) -> str:
    """The MN's repository as a host reaches it: mn_url's address, unless that is loopback
    or a wildcard (an MN serving every address), then this machine's address on the route
    to the host."""
    parts = urlsplit(mn_url)
    address = parts.hostname or ""
    try:
        local = address in ("", "0.0.0.0", "::") or ipaddress.ip_address(address).is_loopback
    except ValueError:
        local = address == "localhost"
    if local:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))  # no packet is sent: the kernel only picks the route
            address = probe.getsockname()[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/repo", "", ""))


def repo_ca(home: Path, repo_url: str) -> str | None:
    """The CA a host trusts the MN's repository with (HTTPS by the cloud's CA)."""
    if not repo_url.startswith("https:"):
        return None
    ca = pki_dir(home) / CA_CERT
    return ca.read_text() if ca.exists() else None


async def add_over_ssh(home: Path, spec: DeploySpec, *, name: str, catalog: RepoCatalog,
                       trust: AgentTrust | None, tls: bool,
                       check_facts: Callable[[HostFacts], None] = lambda facts: None,
                       on_step: Callable[[str], None] = lambda msg: None) -> AddResult:
    """Survey, check, deploy and register one host; nothing changes on it before the checks
    (OS release served, check_facts, not already added) pass."""
    from skylift.transport.ssh import SshPool, SshTarget

    path = registry_path(home)
    registry = NodeRegistry.load(path)
    login = spec.login
    pool = SshPool(registry.known_hosts_path(), share_loop=True,
                   host_key_policy=registry.host_key_policy)
    target = SshTarget(login.address, login.port, login.user, key_path=login.key_path,
                       password=login.password,
                       host_key_fingerprint=login.host_key_fingerprint)
    transport = pool.transport(target)
    try:
        on_step(f"surveying {login.user}@{login.address} over SSH")
        facts = await survey(transport, spec.node_root)
        check_os_served(name, facts, catalog)
        check_facts(facts)
        refuse_twice(login.address, spec.uuid,
                     await agent_answers(login.address, spec.agent_port, trust), name)
        key_path = login.key_path
        if key_path is None:  # a password login: the MN's own key from now on
            key_path = mn_ssh_key(home)
            on_step("authorizing the management node's SSH key")
            result = await transport.arun(["sh", "-c", _AUTHORIZE],
                                          input=key_path.with_suffix(".pub").read_text())
            result.check(f"authorizing the MN's key on {login.address}")
        agent = await deploy(spec, transport, os_release=facts.os_release, trust=trust,
                             tls=tls, on_step=on_step)
        entry = {"transport": "ssh", "host": login.address, "port": login.port,
                 "user": login.user, "key_path": str(key_path), "node_root": spec.node_root,
                 "service": SKYLIFT}
        if login.host_key_fingerprint:
            entry["host_key_fingerprint"] = login.host_key_fingerprint
        register_node(path, spec.uuid, entry)
        return AddResult(facts, agent, entry)
    finally:
        await pool.aclose()
