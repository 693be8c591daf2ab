"""`skylift lab status`: a lab's release as the cloud reports it now, its MN, the agents
answering by kind, and the VMs answering probes with their first boot id."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import sqlalchemy as sa

from skylift.agent.client import AgentClient
from skylift.agent.hypervisor import probe
from skylift.db.engine import Database
from skylift.errors import Refused, SkyliftError
from skylift.lab.state import lab_trust, read_state
from skylift.mn.launch import mn_client


def status(name: str, db_password: str | None = None) -> dict:
    """The lab's release as the cloud reports it now (an upgrade changes it), its MN (mode,
    version), agents answering by kind, VMs answering probes with their boot id."""
    state = read_state(name)
    if state is None:
        raise Refused(f"there is no lab '{name}'", next="bring one up with `skylift lab up`")
    nodes = state["nodes"]
    out = {"name": name, "release": None, "release_from": None,
           "built_release": state["release"], "dir": state["dir"], "db_url": state["db_url"],
           "mn": None, "agents": _by_kind(nodes), "agents_up": {}, "vms": len(state["vms"]),
           "vms_answering": 0, "vms_same_boot_id": 0}
    mn = state.get("mn")
    if mn:
        info = {"url": mn["url"], "token_file": mn["token_file"], "alive": False}
        try:
            with mn_client(mn["url"], None, 3.0, home=Path(mn["home"])) as client:
                info.update(client.get("/v1/version").json(), alive=True)
        except (httpx.HTTPError, ValueError):
            pass
        out["mn"] = info
    out["release"], out["release_from"] = _cloud_release(state, out["mn"], db_password)
    if state.get("ha") and mn:
        out["ha"] = _ha(Path(mn["home"]))

    trust = lab_trust(state)

    def agent_up(n: dict) -> bool:
        try:
            with AgentClient(n["url"], timeout=3.0, trust=trust) as agent:
                return agent.health().get("status") == "ok"
        except SkyliftError:
            return False

    with ThreadPoolExecutor(32) as pool:
        with_url = [n for n in nodes if n.get("url")]
        up_nodes = [n for n, ok in zip(with_url, pool.map(agent_up, with_url)) if ok]
        answers = list(pool.map(lambda vm: probe(vm["endpoint"], 2.0), state["vms"]))
    out["agents_up"] = _by_kind(up_nodes)
    out["vms_answering"] = sum(a is not None for a in answers)
    out["vms_same_boot_id"] = sum(a == vm["boot_id"] for a, vm in zip(answers, state["vms"]))
    return out


def _by_kind(nodes: list[dict]) -> dict[str, int]:
    out = {kind: 0 for kind in ("host", "primary-storage", "backup-storage", "vrouter")}
    for n in nodes:
        out[n["kind"]] = out.get(n["kind"], 0) + 1
    return out


def _cloud_release(state: dict, mn: dict | None,
                   db_password: str | None) -> tuple[str | None, str | None]:
    """The release of the cloud's database, else the one its MN reports; the lab's record is
    only what it was built at, and an upgrade moves the cloud on from there."""
    from skylift.db.migrate import status as db_status

    db = Database.from_string(state["db_url"], db_password)
    try:
        release = db_status(db).release
        if release:
            return release, "database"
    except (SkyliftError, sa.exc.SQLAlchemyError, OSError):
        pass  # a server down or a password not given: the MN still knows
    if mn and mn.get("alive") and mn.get("release"):
        return mn["release"], "mn"
    return None, None




def _ha(home: Path) -> dict | None:
    """The HA cloud as `skylift ha status` sees it from the first MN (no SSH logins)."""
    from skylift import ha_record
    from skylift.ha.status import cluster_status
    from skylift.mn.auth import read_token, token_path
    from skylift.mn.https import client_verify

    cfg = ha_record.load(home)
    if cfg is None:
        return None
    return cluster_status(cfg, read_token(token_path(home)), client_verify(cfg.vip_url, home),
                          timeout=3.0, ssh=False)
