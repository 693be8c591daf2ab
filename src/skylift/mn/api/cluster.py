"""This MN's place in an HA cloud, as only it can tell: its own address, whether its machine
holds the VIP now, and the state of the Galera member it uses. `skylift ha status` asks every
MN this (at its own address, never through the VIP, where another MN would answer).

Served in maintenance too: an MN cut off from the majority, or one of an older release, must
still say where it stands. It reads no table, only server status and the machine's addresses.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from skylift.config import skylift_home
from skylift.errors import SkyliftError
from skylift import ha_record as ha_config
from skylift.db.wsrep import status as galera_status
from skylift.mn.api import mn_of
from skylift.mn.https import machine_addresses
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1/cluster", tags=["system"])


def _view(mn: MnState) -> dict:
    ha = ha_config.load(skylift_home())
    mine = machine_addresses()
    me = next((m for m in ha.members if m.address in mine), None) if ha else None
    galera = None
    if mn.engine.dialect.name in ("mysql", "mariadb"):
        try:
            galera = galera_status(mn.engine, timeout=2.0).to_dict()
        except SkyliftError as exc:
            galera = {"error": exc.what}
        except Exception as exc:  # noqa: BLE001 - a database that cannot answer is a finding
            galera = {"error": type(exc).__name__}
        if galera is not None and galera.get("cluster_status") == "Disconnected" \
                and not galera.get("connected") and galera.get("cluster_size") == 0 \
                and galera.get("local_state_comment") == "":
            galera = None  # a plain MariaDB server: no wsrep at all
    return {"ha": ha is not None, "name": me.name if me else None,
            "address": me.address if me else None,
            "vip": ha.vip if ha else None, "holds_vip": bool(ha and ha.vip in mine),
            "members": [{"name": m.name, "address": m.address, "self": m is me}
                        for m in ha.members] if ha else [],
            "mode": mn.mode, "release": mn.run.release,
            "mn_uuid": mn.heartbeat.uuid if mn.heartbeat else None, "galera": galera}


@router.get("")
async def cluster(mn: MnState = Depends(mn_of)) -> dict:
    """Who this MN is in the HA cloud, whether it holds the VIP, its Galera member's state."""
    return await asyncio.to_thread(_view, mn)
