"""The management nodes serving this cloud's database, and the share of resources each
drives (skylift.mn.ownership): what `skylift ha status` shows as "hosts owned"."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from skylift.mn.api import mn_of
from skylift.mn.ownership import HashRing, live_members
from skylift.mn.resources import load_resources
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1/management-nodes", tags=["system"])


def _view(mn: MnState) -> dict:
    me = mn.heartbeat.uuid if mn.heartbeat else None
    with mn.engine.connect() as conn:
        members = live_members(conn)
        resources = load_resources(conn)
    uuids = [r.uuid for r in resources]
    if mn.share_hosts:
        ring = HashRing([m["uuid"] for m in members] + ([me] if me else []))
        shares = ring.shares(uuids)
    else:  # one MN drives everything (other MNs on the database are not sharing)
        shares = {m["uuid"]: (len(uuids) if m["uuid"] == me else 0) for m in members}
    items = [{"uuid": m["uuid"], "hostname": m["hostname"], "pid": m["pid"],
              "release": m["version"], "heartbeat_at": m["heartbeat_at"],
              "resources_owned": shares.get(m["uuid"], 0), "self": m["uuid"] == me}
             for m in members]
    return {"self": me, "share_hosts": mn.share_hosts, "resources": len(uuids),
            "items": items}


@router.get("")
async def management_nodes(mn: MnState = Depends(mn_of)) -> dict:
    """Every live MN (normal mode, fresh heartbeat) and how many resources it drives."""
    return await asyncio.to_thread(_view, mn)
