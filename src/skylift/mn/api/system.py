"""Health, version, drain and the list of API calls in flight."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.exc import SQLAlchemyError

from skylift import __version__
from skylift.mn.api import mn_of
from skylift.mn.access import caller_of
from skylift.mn.parts import stop_parts
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1", tags=["system"])
log = logging.getLogger("skylift.mn")


@router.get("/health")
def health(mn: MnState = Depends(mn_of)) -> dict:
    """Whether the MN serves, and in which mode (open)."""
    return {"status": "ok", "mode": mn.mode, "pid": mn.pid,
            "mn_uuid": mn.heartbeat.uuid if mn.heartbeat else None}


@router.get("/version")
def version(mn: MnState = Depends(mn_of)) -> dict:
    """The release this MN reports, the database's revision, the mode and why, and whether
    it serves its cloud (open). `serving` is what the VIP's health check (skylift.ha.check)
    follows: false while draining, while its Galera member is out of quorum, or when started
    with --maintenance; true in the maintenance of an upgrade (an older database)."""
    return {"release": mn.run.release, "revision": mn.run.revision,
            "db_release": mn.run.db_release, "mode": mn.mode, "serving": mn.serving,
            "reason": mn.reason, "code_version": __version__,
            "pid": mn.pid, "started_at": mn.started_at.isoformat() + "Z",
            "mn_uuid": mn.heartbeat.uuid if mn.heartbeat else None}


@router.get("/session")
def session_of(request: Request) -> dict:
    """Who the token of this call belongs to: the admin, or an account (the console's sign-in
    asks this to check a token before it keeps it)."""
    caller = caller_of(request)  # which token is never said: a token's id is for its owner
    return {"admin": caller.admin, "account_uuid": caller.account_uuid}


@router.get("/api-calls")
def api_calls(request: Request, mn: MnState = Depends(mn_of)) -> dict:
    """API calls in flight now (this one left out), oldest first."""
    calls = mn.inflight.list(exclude=request.scope.get("state", {}).get("call_id"))
    return {"count": len(calls), "calls": calls}


@router.post("/drain")
async def drain(request: Request, wait: float = Query(0.0, ge=0, le=300, allow_inf_nan=False),
                mn: MnState = Depends(mn_of)) -> dict:
    """Stop taking work (every other call now gets 503) and wait up to `wait` s for the calls
    in flight to finish; answers the calls still in flight."""
    if not mn.draining:
        mn.draining = True
        if mn.heartbeat is not None:
            try:
                await asyncio.to_thread(mn.heartbeat.set_state, "draining")
            except SQLAlchemyError as exc:  # a member out of quorum refuses: drain anyway
                log.warning("heartbeat 'draining' not written: %s",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        # a drained MN hands the cloud over: no more HA decisions or pings from here
        await stop_parts(mn)
    if wait > 0:
        await mn.inflight.wait_until(1, min(wait, 300.0))
    calls = mn.inflight.list(exclude=request.scope.get("state", {}).get("call_id"))
    return {"state": mn.mode, "in_flight": calls, "drained": not calls}
