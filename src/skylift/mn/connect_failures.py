"""Why a resource is not connected, in a word a machine can group by, and what to do about it.

The connection manager keeps the reason of each resource's last failed connect; the API, the
upgrade's status and its report group pending resources by it and show its remedy.
"""

from __future__ import annotations

from dataclasses import dataclass

from skylift.errors import (AgentDidNotReturn, AgentTlsRefused, HostKeyChanged, HostKeyUnknown,
                            NodeLoginRefused, OsReleaseNotServed, PackageDigestMismatch,
                            TransportError, Unreachable)


@dataclass(frozen=True)
class Reason:
    """One reason a resource is pending: its code, what it means, and the remedy."""

    code: str
    meaning: str
    remedy: str


REASONS = {r.code: r for r in (
    Reason("not-tried", "not tried yet since the management node started",
           "wait: the management node connects every resource after it starts"),
    Reason("connecting", "being connected (and its agent upgraded) now",
           "wait a few seconds"),
    Reason("timeout", "the agent did not answer in time (the node is down or cut off)",
           "check the node and the network to it; the management node keeps retrying and "
           "finishes the node within seconds of its return"),
    Reason("refused", "the connection was refused (the node is up, its agent is not)",
           "start the agent on the node (systemctl start skylift-agent); the management "
           "node keeps retrying"),
    Reason("auth", "the node refused the management node's SSH login",
           "put the management node's public key in the node's authorized_keys (or fix "
           "the password file), then reconnect the host"),
    Reason("host-key-changed", "the node's SSH host key is not the one pinned on first use",
           "if the node was really reinstalled, remove its old key from the management "
           "node's known_hosts (`ssh-keygen -R '[address]:port' -f <known_hosts>`); "
           "otherwise find out who answers at its address"),
    Reason("host-key-unknown", "the node's SSH host key is not trusted yet (first contact)",
           "pin it: `ssh-keyscan -p PORT ADDRESS | ssh-keygen -lf -`, check the fingerprint "
           "and give it as host_key_fingerprint for the node in nodes.json (or add the key "
           "to the MN's known_hosts)"),
    Reason("tls", "the agent is pinned to TLS and did not pass the handshake (no "
           "certificate of this cloud's CA naming its address, or plain HTTP answered)",
           "if the node was reinstalled, reconnect it so the management node gives its agent "
           "a certificate again; otherwise find out who answers at its address"),
    Reason("os-release-mismatch", "the host's OS release is not served by the management "
           "node's repository",
           "the same-repo rule: reinstall the host with the management node's OS release, "
           "or add that release's OS image to the repository (`skylift repo update`)"),
    Reason("agent-did-not-return", "the agent was upgraded and restarted, then did not "
           "answer on the new version (it crashed after the install)",
           "read the node's agent.log; fix it and the management node retries"),
    Reason("package-digest-mismatch", "a package in the management node's repository is "
           "not the one its index names",
           "refresh the repository from a verified OS image (`skylift repo update`)"),
    Reason("install-failed", "installing the new agent or packages on the node failed",
           "read the error and the node's logs; the management node retries"),
    Reason("agent-error", "the agent answered with an error",
           "read the error and the node's agent.log; the management node retries"),
)}


def reason_of(exc: BaseException) -> str:
    """The reason code of a failed connect."""
    if isinstance(exc, HostKeyChanged):
        return "host-key-changed"
    if isinstance(exc, HostKeyUnknown):
        return "host-key-unknown"
    if isinstance(exc, NodeLoginRefused):
        return "auth"
    if isinstance(exc, AgentTlsRefused):
        return "tls"
    if isinstance(exc, Unreachable):
        return "timeout" if exc.timed_out else "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OsReleaseNotServed):
        return "os-release-mismatch"
    if isinstance(exc, AgentDidNotReturn):
        return "agent-did-not-return"
    if isinstance(exc, PackageDigestMismatch):
        return "package-digest-mismatch"
    if isinstance(exc, TransportError):
        return "install-failed"
    return "agent-error"


def describe(code: str) -> Reason:
    """The reason of a code (an unknown code, from a newer MN, gets a generic remedy)."""
    return REASONS.get(code) or Reason(code, code, "read the management node's log")
