"""SSH host keys checked the way OpenSSH does, with asyncssh's own known_hosts support.

A known_hosts file is read by asyncssh: hashed entries (`|1|salt|hash`, what Debian's
`HashKnownHosts yes` writes), `@revoked` and `@cert-authority` markers, `[host]:port` names,
wildcards and negations. It is parsed once and re-read only when it changes.

A node's host key is trusted when known_hosts trusts it for the node. A node that known_hosts
does not name at all (first contact) is refused with HostKeyUnknown, unless the operator
chose otherwise, explicitly:

* a pinned fingerprint for that node (`SshTarget(host_key_fingerprint="SHA256:...")`, as
  `ssh-keygen -lf` prints it): a key with that fingerprint is accepted and recorded;
* the accept-new policy (`SshPool(host_key_policy="accept-new")`, OpenSSH's
  `StrictHostKeyChecking accept-new`): trust on first use, the key recorded.

A node known_hosts names with other keys, a revoked key, or a key without the fingerprint
pinned for it is refused (HostKeyChanged, HostKeyUnknown). Every decision is taken during
the key exchange (HostKeyCheck), so a refused node never sees a password or a client key.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from skylift.errors import (ConfigError, HostKeyChanged, HostKeyUnknown, SkyliftError,
                            UsageError)
from skylift.files import write_atomic
from skylift.transport.sshlib import asyncssh

STRICT = "strict"          # a node not in known_hosts is refused (StrictHostKeyChecking yes)
ACCEPT_NEW = "accept-new"  # its first key is accepted and recorded (trust on first use)
POLICIES = (STRICT, ACCEPT_NEW)


def host_pattern(host: str, port: int) -> str:
    """The known_hosts name of a node, as OpenSSH writes it ([host]:port unless port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


def check_policy(policy: str) -> str:
    """policy if it is one of POLICIES, else a UsageError."""
    if policy not in POLICIES:
        raise UsageError(f"unknown SSH host key policy {policy!r}",
                         why=f"the policies are {', '.join(POLICIES)}",
                         next=f"use {STRICT!r} (the default: only keys in known_hosts) or "
                              f"{ACCEPT_NEW!r} (trust a new node's first key and record it)")
    return policy


def check_fingerprint(text: str) -> str:
    """A SHA256 fingerprint as `ssh-keygen -lf` prints it ("SHA256:<base64>"), normalized."""
    body = text.strip().removeprefix("SHA256:").rstrip("=")
    try:
        ok = text.strip().startswith("SHA256:") and len(
            base64.b64decode(body + "=" * (-len(body) % 4), validate=True)) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"{text!r} is not an SSH host key fingerprint",
                         why="a fingerprint is SHA256:<43 base64 characters>",
                         next="take it from `ssh-keygen -lf` (second field), e.g. "
                              "`ssh-keyscan -p PORT HOST | ssh-keygen -lf -`")
    return f"SHA256:{body}"


def fingerprint(key: asyncssh.SSHKey) -> str:
    """The SHA256 fingerprint of a key, as `ssh-keygen -lf` prints it."""
    return key.get_fingerprint("sha256")


def key_line(key: asyncssh.SSHKey) -> str:
    """"ssh-ed25519 AAAA..." of a public key, as known_hosts holds it."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


@contextmanager
def _locked(path: Path) -> Iterator:
    """path opened for appending (created 0600) under an exclusive lock.

    forget() replaces the file: a lock taken on the file it replaced is taken again."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    while True:
        fh = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a")
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        fh.close()
    try:
        yield fh
    finally:
        fh.close()


@dataclass(frozen=True)
class Match:
    """What a known_hosts file says about one node."""

    host_keys: list  # keys trusted for it
    ca_keys: list    # @cert-authority keys trusted to sign its host certificate
    revoked: list    # @revoked keys
    known: bool      # whether known_hosts trusts anything for it (not first contact)


class KnownHosts:
    """One known_hosts file as asyncssh reads it, re-read only when it changes.

    A pool connecting to thousands of nodes must not re-read and re-parse the whole file for
    every connection: that made a 10,000-node rollout quadratic. The keys this process
    records are added to the parsed file, not re-read.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._known = asyncssh.SSHKnownHosts()
        self._stamp: tuple[int, int, int] | None = None
        self._any_revoked = False

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self) -> None:
        """Read the file again if it changed (ConfigError if asyncssh cannot read it)."""
        stamp = self._stat()
        if stamp == self._stamp:
            return
        try:
            text = self.path.read_text() if stamp is not None else ""
            known = asyncssh.import_known_hosts(text)
        except FileNotFoundError:
            text, known = "", asyncssh.SSHKnownHosts()
        except (OSError, ValueError) as exc:  # a malformed line or marker, unreadable
            raise ConfigError(f"cannot read the SSH known hosts file {self.path}",
                              why=str(exc), next="fix or remove the line named") from None
        self._known, self._stamp, self._any_revoked = known, stamp, "@revoked" in text

    def match(self, host: str, addr: str, port: int) -> Match:
        """What the file (as last refreshed) says about host:port (addr: its IP, if known)."""
        port_arg = None if port == 22 else port
        keys, cas, revoked, x509, _, subjects, _ = self._known.match(host, addr, port_arg)
        revoked = list(revoked)
        if port_arg and self._any_revoked:
            # asyncssh falls back to the port-less names when nothing is trusted for
            # [host]:port, and then drops the @revoked lines of [host]:port: keep both. A key
            # revoked for a host is revoked on every port.
            revoked += self._known.match(host, addr, None)[2]
            for name in dict.fromkeys(n for n in (host, addr) if n):
                revoked += self._known.match(f"[{name}]:{port_arg}", "", None)[2]
        return Match(list(keys), list(cas), revoked, bool(keys or cas or x509 or subjects))

    def record(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Record key for host:port (appended under a lock, fsynced); False if the file,
        re-read under the lock, trusts other keys for it (another process recorded first)."""
        with _locked(self.path) as fh:
            self.refresh()
            found = self.match(host, addr, port)
            if found.known:
                return key in found.host_keys and key not in found.revoked
            line = f"{host_pattern(host, port)} {key_line(key)}"
            fh.write(f"{_newline_needed(self.path)}{line}\n")
            fh.flush()
            os.fsync(fh.fileno())
            self._known.load(line)
            self._stamp = self._stat()
        return True


def _newline_needed(path: Path) -> str:
    """"\n" if the file's last line has no end (edited by hand), so a line appended is one."""
    with open(path, "rb") as fh:
        if fh.seek(0, os.SEEK_END) == 0:
            return ""
        fh.seek(-1, os.SEEK_END)
        return "" if fh.read(1) == b"\n" else "\n"


def _names(line: str, name: str) -> bool:
    """Whether a known_hosts line is an entry of name (a hashed one too). Marker lines
    (@revoked, @cert-authority: kept, as `ssh-keygen -R` keeps them) and wildcard patterns
    (they name other hosts too) are not one host's entry."""
    text = line.strip()
    if not text or text[0] in "#@" or any(c in text.split(None, 1)[0] for c in "*?!"):
        return False
    try:
        entry = asyncssh.import_known_hosts(text)
    except ValueError:
        return False
    return bool(entry.match(name, "", None)[0])


def forget(path: Path, host: str, port: int) -> bool:
    """Remove the keys of host:port, hashed entries included (what `ssh-keygen -R` does),
    after a node was really reinstalled; whether there was any."""
    path = Path(path)
    if not path.exists():
        return False
    name = host_pattern(host, port)
    with _locked(path):
        lines = path.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if not _names(ln, name)]
        if len(kept) == len(lines):
            return False
        write_atomic(path, "".join(kept).encode(), mode=os.stat(path).st_mode & 0o777)
    return True


class HostKeyCheck:
    """The host key decision of one connection, taken during the key exchange.

    `trusted` is asyncssh's known_hosts (a callable it calls when the connection is made);
    `validate_key` / `validate_ca` are the client's answers for a key or CA known_hosts does
    not trust. A refusal ends the key exchange: no password or key is ever offered.
    """

    def __init__(self, known: KnownHosts, policy: str, host: str, port: int,
                 pinned: str | None = None) -> None:
        self.known, self.policy, self.host, self.port = known, policy, host, port
        self.pinned = pinned
        self.refusal: SkyliftError | None = None
        self._match = Match([], [], [], False)

    def trusted(self, host: str, addr: str, port: int | None) -> tuple[list, list, list]:
        """The trusted host keys, CA keys and revoked keys of the node (asyncssh's form)."""
        self._match = found = self.known.match(self.host, addr, self.port)
        if self.pinned:  # only that key: a pin is not ignored because known_hosts has others
            return ([k for k in found.host_keys if fingerprint(k) == self.pinned], [],
                    found.revoked)
        return found.host_keys, found.ca_keys, found.revoked

    def validate_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Whether to trust a key known_hosts does not trust (nor revoke) for the node."""
        found, shown = self._match, fingerprint(key)
        if found.known:
            why = None
            if key in found.host_keys:
                why = (f"{self.known.path} trusts the key it showed ({shown}), but the "
                       f"fingerprint pinned for it is {self.pinned}")
            self.refusal = changed_error(self.known.path, self.host, self.port, why=why)
            return False
        if self.pinned and shown != self.pinned:
            self.refusal = unknown_error(
                self.known.path, self.host, self.port,
                why=f"{self.known.path} has no key for it, and the key it showed ({shown}) "
                    f"is not the one pinned for it ({self.pinned})")
            return False
        if not self.pinned and self.policy != ACCEPT_NEW:
            self.refusal = unknown_error(self.known.path, self.host, self.port)
            return False
        try:
            recorded = self.known.record(self.host, addr, self.port, key)
        except (OSError, SkyliftError) as exc:  # no exception may escape the key exchange
            self.refusal = exc if isinstance(exc, SkyliftError) else ConfigError(
                f"cannot record the SSH host key of {host_pattern(self.host, self.port)} in "
                f"{self.known.path}", why=str(exc), next="check the file and its folder")
            return False
        if not recorded:
            self.refusal = changed_error(
                self.known.path, self.host, self.port,
                why=f"{self.known.path} got another key for it while this one was checked")
            return False
        return True

    def validate_ca(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """A host certificate signed by a CA known_hosts does not trust: refused (a CA is
        never trusted on first use)."""
        why = (f"it showed a host certificate signed by a CA ({fingerprint(key)}) that "
               f"{self.known.path} does not trust for it")
        make = changed_error if self._match.known else unknown_error
        self.refusal = make(self.known.path, self.host, self.port, why=why)
        return False

    def error(self, exc: Exception) -> SkyliftError:
        """The refusal to raise for asyncssh's HostKeyNotVerifiable."""
        if self.refusal is not None:
            return self.refusal
        name = host_pattern(self.host, self.port)
        if "revoked" in str(exc):
            return HostKeyChanged(
                f"the SSH host key of {name} is revoked; refusing to connect",
                why=f"{self.known.path} marks the key it showed @revoked (compromised or "
                    "retired)",
                next=f"re-key the node, then add its new key to {self.known.path} or pin "
                     "its fingerprint")
        return changed_error(self.known.path, self.host, self.port, why=str(exc))


def changed_error(path: Path, host: str, port: int, *, why: str | None = None) -> HostKeyChanged:
    """The refusal shown when a node's host key is not the one known_hosts trusts."""
    name = host_pattern(host, port)
    return HostKeyChanged(
        f"the SSH host key of {name} has changed; refusing to connect",
        why=why or f"{path} has another key for it: the node was reinstalled or re-keyed, "
                   "or someone is in the middle",
        next=f"if you know the node was re-keyed, remove the old key with "
             f"`ssh-keygen -R '{name}' -f {path}` and connect again")


def unknown_error(path: Path, host: str, port: int, *,
                  why: str | None = None) -> HostKeyUnknown:
    """The refusal shown on first contact with a node nothing says to trust."""
    name = host_pattern(host, port)
    return HostKeyUnknown(
        f"the SSH host key of {name} is not known; refusing to connect",
        why=why or f"{path} has no key for it, no fingerprint is pinned for it, and the host "
                   f"key policy is {STRICT!r}",
        next=f"compare the key on the node itself (`ssh-keygen -lf "
             f"/etc/ssh/ssh_host_ed25519_key.pub`) with the one that answers "
             f"(`ssh-keyscan -p {port} {host} | ssh-keygen -lf -`), then pin it: "
             f"host_key_fingerprint=\"SHA256:...\" for the node (its SshTarget, or its entry "
             f"in the MN's nodes.json), or add its line to {path}; or, for a new node on a "
             f"network you trust, host_key_policy=\"{ACCEPT_NEW}\" (trust on first use)")
