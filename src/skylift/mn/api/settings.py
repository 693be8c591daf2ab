"""Global settings: list, read and set (served in maintenance mode too; Core only)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from skylift.mn import settings as store
from skylift.mn.api import mn_of
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1/global-settings", tags=["settings"])
ha_router = APIRouter(prefix="/v1/ha", tags=["settings"])


class SettingValue(BaseModel):
    value: Any


@ha_router.get("")
async def vm_ha(mn: MnState = Depends(mn_of)) -> dict:
    """Whether VM HA is on, and whether an unfinished upgrade holds it off."""
    def read() -> dict:
        with mn.engine.connect() as conn:
            return store.vm_ha_state(conn)

    return await asyncio.to_thread(read)


@router.get("")
async def list_settings(mn: MnState = Depends(mn_of)) -> dict:
    """Every global setting."""
    rows = await asyncio.to_thread(store.list_settings, mn.engine)
    return {"count": len(rows), "settings": rows}


@router.get("/{category}/{name}")
async def get_setting(category: str, name: str, mn: MnState = Depends(mn_of)) -> dict:
    """One global setting."""
    return await asyncio.to_thread(store.get_setting, mn.engine, category, name)


@router.put("/{category}/{name}")
async def set_setting(category: str, name: str, body: SettingValue,
                      mn: MnState = Depends(mn_of)) -> dict:
    """Set a global setting (e.g. ha/enable to false); answers it with its previous value.

    Only a setting the cloud has or the MN knows (404 otherwise, naming them); a value is a
    string, a number or true/false, never a list or an object; ha.enable and
    host.updatePkgWhenConnect take true/false, host.agentPort, host.pingInterval and
    host.maxMissedPings a number in their range (400 otherwise)."""
    return await asyncio.to_thread(store.set_setting, mn.engine, category, name, body.value)
