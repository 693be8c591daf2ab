"""`skylift ha init|join|remove`: build an HA cloud from installed MNs, from one of them.

    init(home, vip, name, address, ssh_key)        # this MN becomes the first member
    join(home, JoinRequest(...))                     # a peer (over SSH) becomes a member
    remove(home, name)                               # a member leaves cleanly

Every MN keeps the same HA record (skylift.ha_record) and the cloud's CA and admin token
(one cloud: the same agents trust the same MN client certificate, users use one token on the
VIP and on every MN). join copies those three to the peer over SSH — file contents on the
SSH channel's stdin, written 0600 under a temporary name and renamed, never on a command line
— then runs `python -m skylift.install.ha_member apply` there with the peer's installed
code, then applies the new record on every other member (keepalived reloads with the new list
of unicast peers; the VIP does not move). The peer's MariaDB must already be a member of the
same Galera cluster (checked there: `--cluster-uuid`).

The peer is reached with the HA record's key (the MN's own SSH key, authorized on the peer
with a password read from a file or SKYLIFT_SSH_PASSWORD when the key is not yet there) and
its host key checked against the record's known_hosts (a fingerprint given on first contact
is pinned there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from skylift import ha_record
from skylift.db.engine import Database
from skylift.db.wsrep import status as wsrep_status
from skylift.errors import OperationFailed, Refused, UsageError
from skylift.ha_record import HaConfig, HaMember
from skylift.config import load_config
from skylift.ha.suite import artefact_files, install_suite, installed_suite, kept_artefact
from skylift.install import ha_member
from skylift.install.ha_member import HaRefused
from skylift.mn.auth import token_path
from skylift.pki.authority import pki_dir
from skylift.transport.ssh import SshPool, SshTarget, SshTransport

SHARED_PKI = ("ca.pem", "ca.key", "mn-client.pem", "mn-client.key")
_WRITE = ('umask 077; mkdir -p "$(dirname "$1")"; cat > "$1.skylift-part" && '
          'mv "$1.skylift-part" "$1"')
_AUTHORIZE = ('umask 077; mkdir -p "$HOME/.ssh"; read -r key; '
              'touch "$HOME/.ssh/authorized_keys"; '
              'grep -qxF "$key" "$HOME/.ssh/authorized_keys" || '
              'echo "$key" >> "$HOME/.ssh/authorized_keys"')


@dataclass(frozen=True)
class JoinRequest:
    """A peer MN to make a member: where it is, how to log in, where its state lives."""

    address: str
    name: str
    ssh_user: str = "root"
    ssh_port: int = 22
    password: str | None = None           # read from a file or the environment, never argv
    host_key_fingerprint: str | None = None
    home: str = "/var/lib/skylift"


def _load(home: Path) -> HaConfig:
    cfg = ha_record.load(home)
    if cfg is None:
        raise HaRefused(f"this MN is not one of an HA cloud's (no {ha_record.FILE} in {home})",
                        next="run `skylift ha init --vip ADDRESS` on the first MN")
    return cfg


def init(home: Path, vip: str, name: str, address: str, ssh_key: Path,
         known_hosts: Path, ha_suite: Path | None = None, mn_port: int | None = None,
         check_python: str | None = None) -> dict:
    """This MN becomes the first member of a new HA cloud with this VIP (run again: applied
    again, nothing else)."""
    home = Path(home)
    have = ha_record.load(home)
    if have is not None and not (have.vip == vip and have.member(name)):
        raise HaRefused(f"this MN is already one of an HA cloud's (VIP {have.vip})",
                        next="`skylift ha status` shows it; `ha remove` takes a member out")
    if have is None:
        _, cmd = ha_member._installed(home)
        try:
            cfg = HaConfig(vip=vip, mn_port=mn_port or cmd.port, ssh_key=str(ssh_key),
                           known_hosts=str(known_hosts), check_python=check_python,
                           members=[HaMember(name, address, home=str(home))])
        except UsageError as exc:
            raise HaRefused(exc.what, why=exc.why, next=exc.next) from None
        _check_first(home, cfg, name)  # the record is written only for an MN that can serve
        if ha_suite is None:
            raise HaRefused("no HA suite is given",
                            why="the HA cloud's keepalived configuration and health check come "
                                "from the release's signed HA suite",
                            next="give it with --ha-suite skylift-ha-<release>.tar")
        suite = install_suite(home, ha_suite, load_config(home).trusted_keys)
        cfg = replace(cfg, ha_suite={"release": suite.release, "sha256": suite.sha256})
        cfg.save(home)
    else:
        cfg = have
    return {"vip": vip, "members": [m.name for m in cfg.members],
            "applied": {name: ha_member.apply(home, name)}}


def _check_first(home: Path, cfg: HaConfig, name: str) -> None:
    """ha_member.check against cfg before it is written (the record file is the input)."""
    path = ha_record.ha_path(home)
    cfg.save(home)
    try:
        ha_member.check(home, name)
    finally:
        path.unlink(missing_ok=True)


class Peer:
    """A member (or member to be) over SSH, running skylift's HA member commands there."""

    def __init__(self, cfg: HaConfig, member: HaMember, pool: SshPool,
                 password: str | None = None, fingerprint: str | None = None) -> None:
        self.member = member
        key = Path(cfg.ssh_key) if cfg.ssh_key else None
        self.target = SshTarget(member.address, member.ssh_port, member.ssh_user,
                                key_path=None if password else key, password=password,
                                host_key_fingerprint=fingerprint)
        self.transport = SshTransport(self.target, pool)
        self.key = key

    def run(self, argv: list[str], what: str, input: str | None = None,
            timeout: float = 180.0) -> str:
        return self.transport.run(argv, input=input, timeout=timeout).check(
            f"{what} on {self.member.name} ({self.member.address})").stdout

    def write(self, path: str, text: str) -> None:
        """A file's content over stdin, 0600, renamed into place."""
        self.run(["sh", "-c", _WRITE, "sh", path], f"writing {path}", input=text)

    def authorize(self) -> None:
        """The MN's own public key in the peer's authorized_keys (after a password login)."""
        if self.key is not None:
            pub = Path(f"{self.key}.pub").read_text().strip()
            self.run(["sh", "-c", _AUTHORIZE], "authorizing the MN's SSH key", input=pub + "\n")

    def install_record(self) -> dict:
        out = self.transport.run(["cat", f"{self.member.home}/install.json"], timeout=30)
        if not out.ok:
            raise HaRefused(f"no management node is installed on {self.member.address} in "
                            f"{self.member.home}", why=(out.stderr or "").strip()[:200],
                            next="install one there with `skylift install` first "
                                 "(or give its state folder with --home)")
        return json.loads(out.stdout)

    def skylift(self, python: str, args: list[str], what: str) -> dict:
        """`python -m skylift.install.ha_member ARGS --json` with the peer's installed code."""
        env = [f"SKYLIFT_HOME={self.member.home}",
               f"PYTHONPATH={self.member.home}/mn/slots/current"]
        done = self.transport.run(["env", *env, python, "-m", "skylift.install.ha_member",
                                   *args, "--json"], timeout=300)
        if not done.ok:
            try:
                err = json.loads(done.stderr.strip().splitlines()[-1])
            except (ValueError, IndexError):
                err = {"what": (done.stderr or done.stdout).strip()[-300:]}
            cls = HaRefused if done.exit_status == 2 else OperationFailed
            raise cls(f"{what} on {self.member.name} ({self.member.address}) failed: "
                      f"{err.get('what')}", why=err.get("why", ""), next=err.get("next", ""))
        return json.loads(done.stdout.strip().splitlines()[-1])


def _cluster_uuid(home: Path) -> str:
    _, cmd = ha_member._installed(home)
    db = Database.from_string(cmd.db_url, ha_member._password(cmd))
    return wsrep_status(db, timeout=3.0).cluster_state_uuid


def _share(home: Path, peer: Peer, cfg: HaConfig) -> str:
    """The cloud's CA, admin token and HA record written on the peer, and the HA suite's
    signed artefact put there for it to verify; returns where that artefact is."""
    for name in SHARED_PKI:
        peer.write(f"{peer.member.home}/mn/pki/{name}", (pki_dir(home) / name).read_text())
    peer.write(f"{peer.member.home}/mn/{token_path(home).name}", token_path(home).read_text())
    peer.write(f"{peer.member.home}/{ha_record.FILE}", json.dumps(cfg.to_dict(), indent=2))
    suite = installed_suite(home)
    if suite is None:
        raise HaRefused("this MN has no HA suite installed",
                        next="run `skylift ha init --ha-suite FILE` here first")
    incoming = f"{peer.member.home}/ha/incoming"
    peer.run(["sh", "-c", 'umask 077; mkdir -p "$1"', "sh", incoming], "making a folder")
    for src in artefact_files(kept_artefact(suite)):
        peer.transport.put(src, f"{incoming}/{src.name}")
    return f"{incoming}/{kept_artefact(suite).name}"


def _python(rec: dict) -> str:
    return (rec.get("mn_command") or {}).get("python") or "python3"


def _reapply_others(home: Path, cfg: HaConfig, pool: SshPool, skip: set[str],
                    me: str) -> dict:
    """The record written and applied on every member but those in skip; this MN locally."""
    done = {}
    for m in cfg.members:
        if m.name in skip:
            continue
        if m.name == me:
            cfg.save(home)
            done[m.name] = ha_member.apply(home, m.name)
            continue
        peer = Peer(cfg, m, pool)
        peer.write(f"{m.home}/{ha_record.FILE}", json.dumps(cfg.to_dict(), indent=2))
        done[m.name] = peer.skylift(_python(peer.install_record()), ["apply", "--name", m.name],
                                    "applying the HA record")
    return done


def _me(home: Path, cfg: HaConfig) -> HaMember:
    from skylift.mn.https import machine_addresses

    mine = set(machine_addresses())
    me = next((m for m in cfg.members if m.address in mine), None)
    if me is None:
        raise HaRefused("this machine is none of the HA record's members",
                        next="run it on one of the HA cloud's MNs")
    return me


def join(home: Path, req: JoinRequest) -> dict:
    """The peer becomes a member; the others take it in (see the module's text)."""
    home = Path(home)
    cfg = _load(home)
    me = _me(home, cfg)
    if cfg.member(req.name) or cfg.member(req.address):
        raise HaRefused(f"{req.name} ({req.address}) is a member already",
                        next="`skylift ha status` lists the members")
    new_member = HaMember(req.name, req.address, req.ssh_port, req.ssh_user, req.home)
    try:
        new = replace(cfg, members=[*cfg.members, new_member])
    except UsageError as exc:
        raise HaRefused(exc.what, why=exc.why, next=exc.next) from None
    uuid = _cluster_uuid(home)
    pool = SshPool(Path(cfg.known_hosts or Path(home) / "mn" / "ssh" / "known_hosts"),
                   host_key_policy="strict")
    try:
        peer = Peer(new, new_member, pool, req.password, req.host_key_fingerprint)
        rec = peer.install_record()        # refuses a machine with no installed MN
        if req.password:
            peer.authorize()
        suite = _share(home, peer, new)
        applied = {req.name: peer.skylift(_python(rec), ["apply", "--name", req.name,
                                                         "--cluster-uuid", uuid,
                                                         "--ha-suite", suite],
                                          "making it a member")}
        applied.update(_reapply_others(home, new, pool, {req.name}, me.name))
    finally:
        pool.close()
    return {"joined": req.name, "members": [m.name for m in new.members], "applied": applied}


def remove(home: Path, name: str) -> dict:
    """The member leaves: keepalived and its MN stopped there, the others take it out."""
    home = Path(home)
    cfg = _load(home)
    me = _me(home, cfg)
    gone = cfg.member(name)
    if gone is None:
        raise HaRefused(f"the HA cloud has no member {name!r}",
                        next=f"give one of {[m.name for m in cfg.members]}")
    if gone.name == me.name:
        raise HaRefused(f"{name} is this MN", why="a member is removed from another one",
                        next="run `skylift ha remove` on another MN of the HA cloud")
    new = replace(cfg, members=[m for m in cfg.members if m.name != name])
    pool = SshPool(Path(cfg.known_hosts), host_key_policy="strict")
    try:
        peer = Peer(cfg, gone, pool)
        try:
            left = peer.skylift(_python(peer.install_record()), ["leave"], "leaving")
        except (OperationFailed, Refused) as exc:  # a dead machine: the others go on
            left = {"unreachable": exc.what}
        applied = _reapply_others(home, new, pool, set(), me.name)
    finally:
        pool.close()
    return {"removed": name, "left": left, "members": [m.name for m in new.members],
            "applied": applied}


__all__ = ["JoinRequest", "init", "join", "remove"]
