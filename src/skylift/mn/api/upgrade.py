"""The upgrade as the console's upgrade page shows it (admin only; served in maintenance too,
since it reads files, not the database: see skylift.mn.upgrade_view)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from skylift.mn.api import mn_of
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1", tags=["upgrade"])


@router.get("/upgrade")
async def upgrade(mn: MnState = Depends(mn_of)) -> dict:
    """The last upgrade run on this MN's machine: its status, every step of its plan with
    times, the API's maintenance window, the preflight findings, the proof and the report."""
    return await asyncio.to_thread(mn.upgrade_view.read)
