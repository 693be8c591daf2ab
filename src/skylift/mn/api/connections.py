"""The connection manager's view of every agent-backed resource: what is pending and why, and
converging on demand (retry every pending resource now, then on a short backoff)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from skylift.mn.api import mn_of
from skylift.mn.api.hosts import manager_of
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1/connections", tags=["hosts"])


@router.get("")
async def connections(mn: MnState = Depends(mn_of)) -> dict:
    """Counts, and every resource not Connected with its reason, remedy and next retry."""
    return manager_of(mn).pending()


@router.post("/converge")
async def converge(seconds: float | None = Query(None, gt=0, le=86400),
             mn: MnState = Depends(mn_of)) -> dict:
    """Retry every pending resource now and keep retrying on a short backoff for `seconds`
    (default: the converge window); answers what is pending."""
    return manager_of(mn).converge(seconds)
