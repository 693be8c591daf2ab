"""The SSH transport (asyncssh): pooled connections, bounded concurrency, host keys checked.

    pool = SshPool(known_hosts=Path(".../known_hosts"), max_concurrency=64)
    node = pool.transport(SshTarget("10.0.0.5", username="root", key_path=Path("id_ed25519")))
    node.run(["rpm", "-q", "qemu-kvm"])            # sync, from any thread
    await node.arun(["rpm", "-q", "qemu-kvm"])     # async, from any event loop

The pool owns one event loop in a background thread: every connection lives there, so the
sync and the async API share connections and neither depends on the caller's loop. One
connection per node is kept and reused; a semaphore bounds the operations in flight across
all nodes, and a per-node one stays under OpenSSH's MaxSessions (10 by default).
SshPool(share_loop=True) runs on its first async caller's loop instead (one loop for a whole
storm, closed with `await pool.aclose()`). Keys are parsed once per pool; key exchange and
ciphers prefer X25519 and AES-GCM (see KEX_ALGS).

Host keys are checked against known_hosts the way OpenSSH does (skylift.transport.known_hosts)
during the key exchange, before any password or key is offered. A node known_hosts does not
name is refused unless its SshTarget pins a fingerprint
(`host_key_fingerprint="SHA256:..."`) or the pool's policy is `host_key_policy="accept-new"`.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Coroutine

from skylift.errors import NodeLoginRefused, NodeUnreachable, TransportError
from skylift.secrets import read_secret, redact
from skylift.transport import known_hosts as kh
from skylift.transport.base import Result, Transport
from skylift.transport.sshlib import asyncssh

PASSWORD_ENV = "SKYLIFT_SSH_PASSWORD"
# Algorithm preferences: first the cheapest secure choices, then fallbacks a node's sshd may
# need. asyncssh's defaults put the hybrid ML-KEM kex and chacha20-poly1305 first; with
# X25519 and AES-GCM (AES-NI) a connection + command costs about a quarter less CPU on both
# sides (docs/benchmarks.md, "Where the CPU per node went").
KEX_ALGS = ("curve25519-sha256", "curve25519-sha256@libssh.org", "mlkem768x25519-sha256",
            "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
            "diffie-hellman-group16-sha512", "diffie-hellman-group14-sha256")
ENCRYPTION_ALGS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                   "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr")
# commands and their output are a few hundred bytes: zlib would only cost CPU
COMPRESSION_ALGS = ("none",)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed (optional), else asyncio's.

    Used for the pool's own loop and the lab farm; uvloop's C transports cut per-node CPU
    (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(frozen=True)
class SshTarget:
    """How to reach one node. A password is given as a file or read from $SKYLIFT_SSH_PASSWORD,
    or passed in already read (never printed: it is kept out of repr)."""

    host: str
    port: int = 22
    username: str = "root"
    key_path: Path | None = None
    password_file: Path | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    # the node's host key, as `ssh-keygen -lf` prints it: trusted (and recorded in
    # known_hosts) on first contact; a node showing another key is refused
    host_key_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.host_key_fingerprint is not None:
            object.__setattr__(self, "host_key_fingerprint",
                               kh.check_fingerprint(self.host_key_fingerprint))

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.host, self.port, self.username)

    @property
    def label(self) -> str:
        return f"{self.username}@{kh.host_pattern(self.host, self.port)}"

    def resolve_password(self) -> str | None:
        """The password, if any: given, else from the file, else from the environment."""
        if self.password is not None:
            return self.password
        return read_secret(file=self.password_file, env_var=PASSWORD_ENV, prompt=None)


class _HostKeyClient(asyncssh.SSHClient):
    """asyncssh's client, asking a HostKeyCheck about host keys known_hosts does not trust."""

    def __init__(self, check: kh.HostKeyCheck) -> None:
        self._check = check

    def validate_host_public_key(self, host: str, addr: str, port: int,
                                 key: asyncssh.SSHKey) -> bool:
        return self._check.validate_key(host, addr, port, key)

    def validate_host_ca_key(self, host: str, addr: str, port: int,
                             key: asyncssh.SSHKey) -> bool:
        return self._check.validate_ca(host, addr, port, key)


class SshPool:
    """SSH connections to many nodes, one per node, with bounded concurrency."""

    def __init__(self, known_hosts: Path, max_concurrency: int = 64, per_host: int = 8,
                 connect_timeout: float = 10.0, share_loop: bool = False, *,
                 host_key_policy: str = kh.STRICT) -> None:
        """share_loop: run on the loop of the first async caller instead of a thread of its
        own (for one event loop doing all the work, e.g. the MN's connection manager); sync
        callers must then be other threads, and the owner closes it with `await aclose()`.

        host_key_policy: for a node known_hosts does not name and no fingerprint is pinned
        for, "strict" (refused, HostKeyUnknown) or "accept-new" (its first key trusted and
        recorded in known_hosts)."""
        # asyncssh calls getpass.getuser() on every connection; without $LOGNAME (a service
        # or a container) that is a passwd lookup each time (~4% of the MN's CPU in a storm).
        # Setting it to the very name getuser() would return changes nothing else.
        if not any(os.environ.get(v) for v in ("LOGNAME", "USER", "LNAME", "USERNAME")):
            os.environ["LOGNAME"] = pwd.getpwuid(os.getuid()).pw_name
        self.known_hosts = Path(known_hosts)
        self.host_key_policy = kh.check_policy(host_key_policy)
        self._known = kh.KnownHosts(self.known_hosts)
        self._client_keys: dict[Path, list] = {}
        self.max_concurrency = max_concurrency
        self.per_host = per_host
        self.connect_timeout = connect_timeout
        self._conns: dict[tuple, asyncssh.SSHClientConnection] = {}
        self._locks: dict[tuple, asyncio.Lock] = {}
        self._host_sems: dict[tuple, asyncio.Semaphore] = {}
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.share_loop = share_loop

    # --- the pool's own loop -------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="skylift-ssh",
                                                daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def call(self, coro: Coroutine) -> Any:
        """Run a coroutine on the pool's loop and wait for it (sync callers)."""
        loop = self._ensure_loop()
        if self._thread is None and _running_loop() is loop:
            coro.close()  # waiting here would block the very loop that must run it
            raise RuntimeError("a sync SshPool call from its own (shared) loop; await instead")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def acall(self, coro: Coroutine) -> Any:
        """Run a coroutine on the pool's loop from any other loop (async callers)."""
        if self.share_loop and self._loop is None:
            # a storm's every SSH step hopping to another thread's loop cost a wake-up pipe
            # write each way and GIL contention between the two loops
            self._loop = asyncio.get_running_loop()
        loop = self._ensure_loop()
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def transport(self, target: SshTarget) -> "SshTransport":
        """A transport to one node over this pool."""
        return SshTransport(target, self)

    # --- connections (on the pool's loop) ------------------------------------------------
    async def _connect(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        self._known.refresh()
        check = kh.HostKeyCheck(self._known, self.host_key_policy, target.host, target.port,
                                target.host_key_fingerprint)
        password = target.resolve_password()
        options = dict(
            host=target.host, port=target.port, username=target.username,
            # checked during the key exchange: a refused host key ends the connection before
            # the password or the client key is offered
            known_hosts=check.trusted, client_factory=lambda: _HostKeyClient(check),
            client_keys=self._client_key(target.key_path) if target.key_path else None,
            password=password, agent_path=None, config=None, gss_auth=False, gss_kex=False,
            connect_timeout=self.connect_timeout, kex_algs=list(KEX_ALGS),
            encryption_algs=list(ENCRYPTION_ALGS), compression_algs=list(COMPRESSION_ALGS),
        )
        try:
            conn = await asyncssh.connect(**options)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise check.error(exc) from None
        except asyncssh.PermissionDenied:
            raise NodeLoginRefused(f"SSH login to {target.label} was refused",
                                 why="the key or password was not accepted",
                                 next="check the key file, or the password file / "
                                      f"${PASSWORD_ENV}") from None
        except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
            raise NodeUnreachable(f"cannot reach {target.label} over SSH",
                                  why=redact(str(exc) or type(exc).__name__, password),
                                  next="check that the node is up and sshd listens there",
                                  timed_out=isinstance(exc, (asyncio.TimeoutError,
                                                             TimeoutError))) from None
        return conn

    def _client_key(self, path: Path) -> list:
        """The client key pair of path, read once per pool: given a path, asyncssh reads and
        parses the key file on every connection, a visible share of the MN's CPU."""
        keys = self._client_keys.get(path)
        if keys is None:
            keys = self._client_keys[path] = asyncssh.load_keypairs([str(path)])
        return keys

    async def connection(self, target: SshTarget) -> asyncssh.SSHClientConnection:
        """The pooled connection to target, made on first use or after it was lost."""
        lock = self._locks.setdefault(target.key, asyncio.Lock())
        async with lock:  # concurrent first uses of a node open one connection, not many
            conn = self._conns.get(target.key)
            if conn is None or conn.is_closed():
                conn = await self._connect(target)
                self._conns[target.key] = conn
            return conn

    def _limits(self, target: SshTarget) -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_concurrency)
        host_sem = self._host_sems.setdefault(target.key, asyncio.Semaphore(self.per_host))
        return self._sem, host_sem

    async def _drop(self, target: SshTarget) -> None:
        conn = self._conns.pop(target.key, None)
        if conn is not None:
            conn.close()
            await conn.wait_closed()

    async def run(self, target: SshTarget, argv: list[str], input: str | None,
                  timeout: float | None) -> Result:
        """Run argv on target (on the pool's loop)."""
        command = shlex.join(argv)
        total, host = self._limits(target)
        async with total, host:
            for attempt in (1, 2):
                conn = await self.connection(target)
                try:
                    done = await conn.run(command, input=input, timeout=timeout, check=False)
                except asyncssh.ChannelOpenError:
                    # the session never started, so trying once more on a new connection
                    # cannot run the command twice
                    await self._drop(target)
                    if attempt == 2:
                        raise TransportError(f"cannot open an SSH session to {target.label}",
                                             why="the connection was closed by the node",
                                             next="check sshd on the node") from None
                    continue
                except asyncssh.TimeoutError:
                    raise TransportError(f"{argv[0]} timed out after {timeout:g}s on "
                                         f"{target.label}",
                                         why="the command did not finish in time",
                                         next="look at the node's load, or allow a longer "
                                              "timeout") from None
                except (asyncssh.Error, OSError) as exc:
                    await self._drop(target)
                    raise TransportError(f"lost the SSH connection to {target.label} while "
                                         f"running {argv[0]}", why=str(exc),
                                         next="check the node; the command may or may not "
                                              "have run") from None
                status = done.returncode if done.returncode is not None else -1
                return Result(status, done.stdout or "", done.stderr or "")
        raise AssertionError("unreachable")

    async def put(self, target: SshTarget, local_path: Path, remote_path: str) -> None:
        """Copy a file to target: to a temporary name, then renamed into place."""
        total, host = self._limits(target)
        tmp = f"{remote_path}.skylift-part"
        async with total, host:
            conn = await self.connection(target)
            try:
                async with conn.start_sftp_client() as sftp:
                    await sftp.put(str(local_path), tmp, preserve=True)
                    try:
                        await sftp.posix_rename(tmp, remote_path)
                    except asyncssh.SFTPError:  # a server without the posix-rename extension
                        if await sftp.exists(remote_path):
                            await sftp.remove(remote_path)
                        await sftp.rename(tmp, remote_path)
            except (asyncssh.Error, OSError) as exc:
                raise TransportError(f"cannot copy {local_path} to {target.label}:{remote_path}",
                                     why=str(exc) or type(exc).__name__,
                                     next="check the remote folder exists and has space") from None

    async def aclose(self) -> None:
        """Close every connection (from any loop); a shared loop is left to its owner."""
        await self.acall(self._close_all())
        if self._thread is None:
            self._loop = self._sem = None
            self._locks.clear()
            self._host_sems.clear()

    async def _close_all(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()

    def close(self) -> None:
        """Close every connection and stop the pool's loop thread."""
        if self._loop is None:
            return
        if self._thread is None:  # a shared loop: not ours to stop
            self.call(self._close_all())
            self._loop = self._sem = None
            return
        self.call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None
        self._sem = None
        self._locks.clear()
        self._host_sems.clear()


class SshTransport(Transport):
    """One node over an SshPool; sync methods (Transport) and async ones (a-prefixed)."""

    name = "ssh"

    def __init__(self, target: SshTarget, pool: SshPool) -> None:
        self.target = target
        self.pool = pool

    async def arun(self, argv: list[str], input: str | None = None,
                   timeout: float | None = None) -> Result:
        return await self.pool.acall(self.pool.run(self.target, argv, input, timeout))

    async def aput(self, local_path: Path, remote_path: str) -> None:
        await self.pool.acall(self.pool.put(self.target, local_path, remote_path))

    async def aclose(self) -> None:
        await self.pool.acall(self.pool._drop(self.target))

    def run(self, argv: list[str], input: str | None = None,
            timeout: float | None = None) -> Result:
        return self.pool.call(self.pool.run(self.target, argv, input, timeout))

    def put(self, local_path: Path, remote_path: str) -> None:
        self.pool.call(self.pool.put(self.target, local_path, remote_path))

    def close(self) -> None:
        """Close this node's connection (the pool stays usable)."""
        if self.pool._loop is not None:
            self.pool.call(self.pool._drop(self.target))
