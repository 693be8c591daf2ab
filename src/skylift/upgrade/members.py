"""The MNs of an HA cloud as the multi-MN upgrade's coordinator drives them.

Each MN is reached by its own address from the HA record (skylift.ha_record), never through
the VIP: a peer over SSH (its host key checked against the record's known_hosts, logged in
with the MN's key, or a password read from a file or SKYLIFT_SSH_PASSWORD), this machine's
own MN as a local process. On each, `python -m skylift.upgrade.member OP` does the work
(skylift.upgrade.member_ops), with the order — and the database password — on its stdin.

A peer that cannot be reached is *behind*: the run goes on without it and says which MN is
behind and how to bring it in (skylift.upgrade.steps.ha_members).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from skylift import ha_record
from skylift.errors import OperationFailed, Refused, SkyliftError
from skylift.ha_record import HaConfig, HaMember
from skylift.transport.base import Transport
from skylift.transport.local import LocalTransport
from skylift.transport.ssh import SshPool, SshTarget, SshTransport

SSH_PASSWORD_ENV = "SKYLIFT_SSH_PASSWORD"
OP_TIMEOUT = 600.0
_WRITE = ('umask 077; mkdir -p "$(dirname "$1")"; cat > "$1.skylift-part" && '
          'mv "$1.skylift-part" "$1"')


class MemberUnreachable(OperationFailed):
    """An MN that cannot be reached (SSH refused, timed out, host down): it is behind."""


class MemberRefused(Refused):
    """An MN refused an operation (nothing changed there)."""


@dataclass
class MemberCall:
    """Where one MN is and how to reach it."""

    member: HaMember
    local: bool


def me_of(cfg: HaConfig) -> HaMember | None:
    """The member whose own address is this machine's (None: this machine is none of them)."""
    from skylift.mn.https import machine_addresses

    mine = set(machine_addresses())
    return next((m for m in cfg.members if m.address in mine), None)


class Members:
    """The HA cloud's MNs, this one among them, and how to run member operations on each."""

    def __init__(self, home: Path, cfg: HaConfig | None = None,
                 ssh_password: str | None = None) -> None:
        self.home = Path(home)
        self.cfg = cfg or ha_record.load(self.home)
        if self.cfg is None:
            raise Refused(f"no HA record in {self.home}", next="run it on an HA cloud's MN")
        self.me = me_of(self.cfg)
        self._password = ssh_password
        self._pool: SshPool | None = None
        self._transports: dict[str, Transport] = {}
        self._pythons: dict[str, str] = {}

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.cfg.members]

    def peers(self) -> list[HaMember]:
        return [m for m in self.cfg.members if self.me is None or m.name != self.me.name]

    def member(self, name: str) -> HaMember:
        found = self.cfg.member(name)
        if found is None:
            raise Refused(f"the HA cloud has no member {name!r}", next=f"one of {self.names}")
        return found

    # --- transports ---------------------------------------------------------------------------
    def transport(self, m: HaMember) -> Transport:
        if m.name not in self._transports:
            if self.me is not None and m.name == self.me.name:
                self._transports[m.name] = LocalTransport()
            else:
                if self._pool is None:
                    known = Path(self.cfg.known_hosts or self.home / "mn" / "ssh" / "known_hosts")
                    self._pool = SshPool(known, host_key_policy="strict")
                key = Path(self.cfg.ssh_key) if self.cfg.ssh_key else None
                target = SshTarget(m.address, m.ssh_port, m.ssh_user,
                                   key_path=None if self._password else key,
                                   password=self._password)
                self._transports[m.name] = SshTransport(target, self._pool)
        return self._transports[m.name]

    def _run(self, m: HaMember, argv: list[str], what: str, input: str | None = None,
             timeout: float = 60.0):
        try:
            done = self.transport(m).run(argv, input=input, timeout=timeout)
        except (OSError, SkyliftError, TimeoutError) as exc:
            raise MemberUnreachable(f"{m.name} ({m.address}) cannot be reached for {what}",
                                    why=getattr(exc, "what", None) or str(exc) or
                                    type(exc).__name__,
                                    next=f"bring {m.name} back (its machine, its sshd), then "
                                         "`skylift upgrade resume`") from None
        if done.exit_status == 255 and not (self.me and m.name == self.me.name):
            raise MemberUnreachable(f"{m.name} ({m.address}) cannot be reached for {what}",
                                    why=(done.stderr or "ssh exit status 255").strip()[-200:],
                                    next=f"bring {m.name} back, then `skylift upgrade resume`")
        return done

    def reachable(self, m: HaMember, timeout: float = 10.0) -> str | None:
        """None when the MN takes an SSH login and runs a command, else why not."""
        try:
            done = self._run(m, ["true"], "a login", timeout=timeout)
        except MemberUnreachable as exc:
            return exc.why or exc.what
        return None if done.ok else (done.stderr or "").strip()[-200:] or "login failed"

    # --- member operations --------------------------------------------------------------------
    def python_of(self, m: HaMember) -> str:
        """The Python that runs skylift on that MN: its install's, else the HA record's (read
        once per run)."""
        if m.name not in self._pythons:
            self._pythons[m.name] = self._python_of(m)
        return self._pythons[m.name]

    def _python_of(self, m: HaMember) -> str:
        done = self._run(m, ["cat", f"{m.home}/install.json"], "reading its install record")
        if done.ok:
            try:
                py = (json.loads(done.stdout).get("mn_command") or {}).get("python")
                if py:
                    return py
            except ValueError:
                pass
        return self.cfg.check_python or "python3"

    def call(self, m: HaMember, op: str, order: dict, timeout: float = OP_TIMEOUT) -> dict:
        """Run one member operation on m; its answer, or MemberRefused / OperationFailed /
        MemberUnreachable saying what went wrong there."""
        if self.me is not None and m.name == self.me.name:
            return self._call_here(m, op, order)
        env = [f"SKYLIFT_HOME={m.home}", f"PYTHONPATH={m.home}/mn/slots/current"]
        done = self._run(m, ["env", *env, self.python_of(m), "-m", "skylift.upgrade.member",
                             op], f"`{op}`", input=json.dumps(order), timeout=timeout)
        if done.ok:
            return json.loads(done.stdout.strip().splitlines()[-1])
        try:
            err = json.loads(done.stderr.strip().splitlines()[-1])
        except (ValueError, IndexError):
            err = {"what": (done.stderr or done.stdout).strip()[-300:] or "no output"}
        cls = MemberRefused if done.exit_status == 2 else OperationFailed
        raise cls(f"{op} on {m.name} ({m.address}): {err.get('what')}",
                  why=err.get("why", ""), next=err.get("next", "") or
                  "fix the cause there, then `skylift upgrade resume`")

    def _call_here(self, m: HaMember, op: str, order: dict) -> dict:
        """This MN's own operation, in this process (skylift.upgrade.member.run_here)."""
        from skylift.upgrade.member import run_here
        from skylift.upgrade.member_ops import Order

        try:
            return run_here(Path(m.home), op, Order(**order))
        except Refused as exc:
            raise MemberRefused(f"{op} on {m.name} ({m.address}): {exc.what}", why=exc.why,
                                next=exc.next) from None

    def put(self, m: HaMember, local: Path, remote: str) -> None:
        """A file copied to the MN (a temporary name, then renamed)."""
        try:
            self._run(m, ["mkdir", "-p", str(Path(remote).parent)], "making a folder").check(
                f"making a folder on {m.name}")
            self.transport(m).put(Path(local), remote)
        except MemberUnreachable:
            raise
        except (OSError, SkyliftError) as exc:
            if isinstance(exc, OperationFailed) and not isinstance(exc, MemberUnreachable):
                raise
            raise MemberUnreachable(f"copying {Path(local).name} to {m.name} failed",
                                    why=str(exc)[:200], next="bring it back, then resume") \
                from None

    def write(self, m: HaMember, remote: str, data: bytes) -> None:
        """A small file's content over stdin, 0600, renamed into place."""
        self._run(m, ["sh", "-c", _WRITE, "sh", remote], f"writing {remote}",
                  input=data.decode()).check(f"writing {remote} on {m.name}")

    def write_many(self, m: HaMember, folder: str, files: list[tuple[str, bytes]]) -> None:
        """Several files into one folder of m in one command: a tar on stdin, each file
        written 0600 under a temporary name and renamed (a reader sees old or new, whole)."""
        import base64
        import io
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, blob in files:
                info = tarfile.TarInfo(f"{name}.skylift-part")
                info.size, info.mode = len(blob), 0o600
                tar.addfile(info, io.BytesIO(blob))
        script = ('umask 077; mkdir -p "$1" && cd "$1" && base64 -d | tar -xf - && '
                  'for f in *.skylift-part; do mv "$f" "${f%.skylift-part}"; done')
        self._run(m, ["sh", "-c", script, "sh", folder], f"writing {folder}",
                  input=base64.b64encode(buf.getvalue()).decode()).check(
            f"writing {folder} on {m.name}")

    def read(self, m: HaMember, remote: str) -> str | None:
        done = self._run(m, ["cat", remote], f"reading {remote}")
        return done.stdout if done.ok else None

    def close(self) -> None:
        for t in self._transports.values():
            try:
                t.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._transports.clear()
        if self._pool is not None:
            self._pool.close()
            self._pool = None
