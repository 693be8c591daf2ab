"""`skylift ha status`: where the HA cloud stands, asked of every MN at its own address.

The tutorial's operator runs `zsha2 status` to find the VIP holder before anything else. Here
every MN of the HA record (skylift.ha_record) is asked, at its own address and never through
the VIP (where whichever MN holds it would answer):

- GET /v1/version: its mode, release and whether it serves (skylift.ha.check's test);
- GET /v1/cluster: whether its machine carries the VIP now, its Galera member's state;
- GET /v1/management-nodes (of one MN in normal mode): the resources each MN drives;
- an SSH login as the HA record says (key and known_hosts; host keys checked strictly).

The cloud is healthy when every MN answers and serves, exactly one holds the VIP, every
Galera member is Synced in one Primary component of all members, all run one release and
every peer takes an SSH login. Each thing that is not so is a finding, for a person.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from skylift.errors import SkyliftError
from skylift.ha_record import HaConfig, HaMember
from skylift.db.wsrep import WsrepStatus


@dataclass
class MnReport:
    """What one MN said of itself (answers False: it said nothing)."""

    name: str
    address: str
    url: str
    answers: bool = False
    error: str = ""
    mode: str | None = None
    release: str | None = None
    serving: bool = False
    reason: str = ""
    owns_vip: bool = False
    mn_uuid: str | None = None
    galera: dict | None = None
    ssh: dict = field(default_factory=lambda: {"reachable": None, "why": "not checked"})
    hosts_owned: int | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _ask(member: HaMember, cfg: HaConfig, token: str, verify, timeout: float) -> MnReport:
    url = cfg.url_of(member.address)
    rep = MnReport(member.name, member.address, url)
    try:
        with httpx.Client(base_url=url, timeout=timeout, verify=verify,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            version = client.get("/v1/version")
            version.raise_for_status()
            v = version.json()
            rep.mode, rep.release = v.get("mode"), v.get("release")
            rep.serving = bool(v.get("serving", v.get("mode") == "normal"))
            rep.reason, rep.mn_uuid = v.get("reason") or "", v.get("mn_uuid")
            view = client.get("/v1/cluster")
            view.raise_for_status()
            c = view.json()
            rep.owns_vip, rep.galera = bool(c.get("holds_vip")), c.get("galera")
            rep.answers = True
    except (httpx.HTTPError, ValueError) as exc:
        rep.error = f"{type(exc).__name__}: {str(exc)[:160]}"
    return rep


def _shares(reports: list[MnReport], token: str, verify, timeout: float) -> None:
    """Hosts owned by each MN, from one MN in normal mode (the others drive none)."""
    for rep in reports:
        rep.hosts_owned = 0 if rep.answers else None
    asker = next((r for r in reports if r.answers and r.mode == "normal"), None)
    if asker is None:
        return
    try:
        with httpx.Client(base_url=asker.url, timeout=timeout, verify=verify,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            items = client.get("/v1/management-nodes").raise_for_status().json()["items"]
    except (httpx.HTTPError, ValueError, KeyError):
        return
    owned = {i["uuid"]: i.get("resources_owned", 0) for i in items}
    for rep in reports:
        if rep.mn_uuid in owned:
            rep.hosts_owned = owned[rep.mn_uuid]


def _ssh_checks(cfg: HaConfig, reports: list[MnReport], timeout: float) -> None:
    """An SSH login (`true`) on every MN, with the HA record's key and known_hosts."""
    if not cfg.ssh_key or not cfg.known_hosts:
        for rep in reports:
            rep.ssh = {"reachable": None, "why": "no SSH key in the HA record"}
        return
    from skylift.transport.ssh import SshPool, SshTarget, SshTransport

    pool = SshPool(Path(cfg.known_hosts), connect_timeout=timeout)
    try:
        for rep in reports:
            m = cfg.member(rep.name)
            target = SshTarget(m.address, m.ssh_port, m.ssh_user, Path(cfg.ssh_key))
            try:
                done = SshTransport(target, pool).run(["true"], timeout=timeout)
                rep.ssh = {"reachable": done.ok,
                           "why": "" if done.ok else f"`true` exited {done.exit_status}"}
            except (SkyliftError, OSError) as exc:
                why = exc.what if isinstance(exc, SkyliftError) else str(exc)
                rep.ssh = {"reachable": False, "why": why[:200]}
    finally:
        pool.close()


def findings(cfg: HaConfig, reports: list[MnReport]) -> list[str]:
    """What is wrong with the HA cloud, for a person; empty when it is healthy."""
    out = []
    size = len(cfg.members)
    for r in reports:
        if not r.answers:
            out.append(f"{r.name} ({r.address}) does not answer at {r.url}: {r.error}")
            continue
        if not r.serving:
            out.append(f"{r.name} does not serve (mode {r.mode}): {r.reason or 'no reason given'}")
        if r.galera is None:
            out.append(f"{r.name}'s database is not a Galera member")
        elif "error" in r.galera:
            out.append(f"{r.name}'s Galera member cannot be read: {r.galera['error']}")
        else:
            st = _galera(r.galera)
            found = st.finding()
            if found:
                out.append(f"{r.name}'s Galera member is {found}")
            elif st.cluster_size < size:  # more is fine: an arbitrator (garbd) is a member
                out.append(f"{r.name}'s Galera cluster has {st.cluster_size} member(s) for "
                           f"{size} MNs: the others' databases are down or cut off")
        if r.ssh.get("reachable") is False:
            out.append(f"{r.name} takes no SSH login: {r.ssh.get('why')}")
    holders = [r.name for r in reports if r.owns_vip]
    if not holders:
        out.append(f"no MN holds the VIP {cfg.vip}: no MN passes the health check, or "
                   "keepalived does not run")
    elif len(holders) > 1:
        out.append(f"several MNs hold the VIP {cfg.vip}: {', '.join(holders)} (split brain: "
                   "they do not hear each other's VRRP adverts)")
    releases = sorted({r.release for r in reports if r.answers and r.release})
    if len(releases) > 1:
        out.append(f"the MNs run different releases: {', '.join(releases)}")
    return out


def _galera(d: dict) -> WsrepStatus:
    return WsrepStatus(local_state_comment=d.get("local_state_comment", ""),
                       cluster_size=d.get("cluster_size", 0),
                       cluster_status=d.get("cluster_status", ""), ready=d.get("ready", False),
                       connected=d.get("connected", False))


def cluster_status(cfg: HaConfig, token: str, verify, timeout: float = 5.0,
                   ssh: bool = True) -> dict:
    """Every MN's report and the findings; `healthy` when there are none."""
    with ThreadPoolExecutor(max(1, len(cfg.members))) as pool:
        reports = list(pool.map(lambda m: _ask(m, cfg, token, verify, timeout), cfg.members))
    _shares(reports, token, verify, timeout)
    if ssh:
        _ssh_checks(cfg, reports, timeout)
    found = findings(cfg, reports)
    holder = next((r.name for r in reports if r.owns_vip), None)
    return {"vip": cfg.vip, "vip_holder": holder, "healthy": not found, "findings": found,
            "mns": [r.to_dict() for r in reports]}
