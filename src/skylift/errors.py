"""Errors a person reads: what happened, why, and what to do next.

Every refusal in skylift is one of these types; the CLI renders them in one place and maps
them to exit codes (1 failed, 2 refused by a check or bad input).
"""

from __future__ import annotations


class SkyliftError(Exception):
    """Base of every error skylift shows to a person."""

    exit_code = 1

    def __init__(self, what: str, *, why: str = "", next: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.next = next

    def render(self) -> str:
        """The message as shown to a person: one to three short lines."""
        lines = [self.what]
        if self.why:
            lines.append(f"  why: {self.why}")
        if self.next:
            lines.append(f"  next: {self.next}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, str]:
        return {"error": type(self).__name__, "what": self.what, "why": self.why, "next": self.next}

    def __str__(self) -> str:
        return self.render()


def error_text(exc: BaseException) -> str:
    """Any exception as a person reads it (a skylift error rendered, else its type and text)."""
    if isinstance(exc, SkyliftError):
        return exc.render()
    return f"{type(exc).__name__}: {exc}"


class Refused(SkyliftError):
    """The request was refused before anything changed (bad input, failed check, downgrade)."""

    exit_code = 2


class UsageError(Refused):
    """An argument or option is wrong."""


class ConfigError(Refused):
    """The configuration file or environment is wrong."""


class DatabaseError(SkyliftError):
    """The database could not be reached or did not do what was asked."""


class ArtefactError(Refused):
    """A release artefact is missing, damaged or not genuine."""


class PackageDigestMismatch(ArtefactError):
    """A package file's digest is not the one its repository index records."""


class NoSuchPackage(ArtefactError):
    """A repository does not carry the package (name and version) asked for."""


class OperationFailed(SkyliftError):
    """An operation started and did not finish; the message says what state it left."""


class BackupError(Refused):
    """A database backup is missing, damaged, or does not restore to the data it was taken from."""


class DatabaseInUse(Refused):
    """The database is in use (a management node runs against it), so it may not be replaced."""


class AgentError(OperationFailed):
    """An agent did not start, stop or answer as asked."""


class Unreachable(SkyliftError):
    """Something did not answer at all; timed_out tells a timeout from a refused connection."""

    def __init__(self, what: str, *, why: str = "", next: str = "",
                 timed_out: bool = False) -> None:
        super().__init__(what, why=why, next=next)
        self.timed_out = timed_out


class AgentUnreachable(Unreachable, AgentError):
    """An agent did not answer at all: the connection timed out or was refused."""


class AgentTlsRefused(AgentUnreachable):
    """An agent pinned to TLS did not pass the handshake: no certificate of this cloud's CA
    naming its address, or it spoke plain HTTP (it may be an impostor at that address)."""


class AgentDidNotReturn(AgentError):
    """An agent restarted after an upgrade did not answer again on the new version."""


class OsReleaseNotServed(AgentError):
    """A host runs an OS release the MN's local repository does not serve (the same-repo rule)."""


class HostOsNotServed(Refused):
    """A host to add runs an OS release the MN's repository does not serve (nothing changed)."""


class HypervisorError(OperationFailed):
    """The hypervisor (VM driver) could not do what was asked to a VM."""


class NoSuchVm(Refused):
    """The VM named is not defined on this node."""


class TransportError(OperationFailed):
    """A node could not be reached, or a command or file transfer on it did not run."""


class NodeUnreachable(Unreachable, TransportError):
    """A node did not answer over its transport (SSH): timed out or refused."""


class NodeLoginRefused(TransportError):
    """A node refused the MN's SSH login (key or password not accepted)."""


class HostKeyChanged(TransportError):
    """A node's SSH host key differs from the one pinned on first use; nothing was sent."""

    exit_code = 2


class HostKeyUnknown(TransportError):
    """A node's SSH host key is not in known_hosts, and no pinned fingerprint or accept-new
    policy trusts it; nothing was sent."""

    exit_code = 2


# --- the upgrade engine (skylift.engine) ---


class PlanError(UsageError):
    """A plan is malformed (duplicate ids) or a phase or step named by the operator does not exist."""


class JournalError(OperationFailed):
    """The run journal cannot be read or written, or is damaged in a way that is not a torn tail."""


class SecretInJournal(JournalError):
    """Something tried to write a registered secret into the journal; nothing was written."""

    exit_code = 2


class JournalMismatch(Refused):
    """The journal belongs to another plan (or another version of it), or has nothing to resume."""


class StepError(OperationFailed):
    """A plan step failed; the run stopped there and the journal records where."""

    def __init__(self, what: str, *, step: str, why: str = "", next: str = "") -> None:
        super().__init__(what, why=why, next=next)
        self.step = step


class RollbackRefused(Refused):
    """A rollback was refused (nothing was undone), e.g. because the point of no return is passed."""


class RollbackFailed(OperationFailed):
    """Undoing a step failed; the steps undone so far are journalled."""


# --- management node -------------------------------------------------------------------------


class HostReconnecting(Refused):
    """An operation needs a host (or storage, vRouter) that is Connecting; retry later."""


class UpgradeInProgress(Refused):
    """The management node is in maintenance (an upgrade runs) and serves only a few calls."""


class QuorumLost(Refused):
    """The management node's Galera member is cut off from the cluster's majority: the MN
    serves only a few calls until the member is back in the Primary component."""


class NoSuchResource(Refused):
    """The resource named does not exist in the cloud's inventory."""


class QemuMismatch(Refused):
    """A host's QEMU differs from its cluster's: it must join a new cluster."""


class NotAuthorized(Refused):
    """The API call carries no token, or one that is wrong, expired or revoked."""


class Forbidden(Refused):
    """The caller's token is valid but does not allow this call (an account on an admin route)."""


class TooManyAttempts(Refused):
    """Too many failed authentications from one address: wait before trying again."""


class HostDisconnected(Refused):
    """A VM or volume operation on a host whose agent does not answer (Disconnected)."""



class HaUnhealthy(SkyliftError):
    """The HA cloud is not healthy: an MN, the VIP, Galera or SSH to a peer is not as it must
    be (each finding is named)."""

    exit_code = 2
