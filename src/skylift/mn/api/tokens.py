"""API tokens: issue one to an account, list them, revoke one, rotate the admin token.

A token's secret is answered once, when it is issued, and never stored (only its SHA-256);
lists show when each token was made and when it expires. The admin issues tokens to
accounts and may revoke any; an account lists and revokes only its own (another account's
is a 404). Rotating the admin token replaces the admin-token file atomically: the old token
stops working on the next call, on every MN serving this state folder, and the new one is
read from the file (never answered over HTTP).
"""

from __future__ import annotations

import asyncio
import datetime as dt

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from skylift.db.models.identity import Account, ApiToken
from skylift.errors import NoSuchResource, Refused
from skylift.mn.access import caller_of
from skylift.mn.api import mn_of
from skylift.mn.api.rows import get_or_404, session
from skylift.mn.auth import rotate_token
from skylift.mn.state import MnState
from skylift.mn.tokens import DEFAULT_TTL, MAX_TTL, issue, utcnow

router = APIRouter(prefix="/v1", tags=["tokens"])


class TokenIn(BaseModel):
    ttl_seconds: int = Field(default=int(DEFAULT_TTL.total_seconds()), ge=60,
                             le=int(MAX_TTL.total_seconds()))


def _public(row: ApiToken, now: dt.datetime) -> dict:
    return {"uuid": row.uuid, "account_uuid": row.account_uuid,
            "created_at": row.created_at.isoformat() + "Z" if row.created_at else None,
            "expires_at": row.expires_at.isoformat() + "Z", "expired": row.expires_at <= now}


@router.post("/accounts/{uuid}/tokens", status_code=201)
async def issue_token(uuid: str, body: TokenIn, mn: MnState = Depends(mn_of)) -> dict:
    """Issue a token to an account (admin only), valid ttl_seconds (default 24 h, at most
    30 days). The answer holds the token itself, the only time it is shown."""
    def work() -> dict:
        with session(mn) as ses:
            get_or_404(ses, Account, uuid)
            return issue(ses.connection(), uuid,
                         dt.timedelta(seconds=body.ttl_seconds)).to_dict()

    return await asyncio.to_thread(work)


@router.get("/tokens")
async def list_tokens(request: Request, mn: MnState = Depends(mn_of)) -> dict:
    """Tokens that are not revoked (an account: its own), without their secrets."""
    caller = caller_of(request)

    def work() -> list[dict]:
        query = sa.select(ApiToken).order_by(ApiToken.created_at, ApiToken.uuid)
        if not caller.admin:
            query = query.where(ApiToken.account_uuid == caller.account_uuid)
        now = utcnow()
        with session(mn) as ses:
            return [_public(row, now) for row in ses.scalars(query)]

    items = await asyncio.to_thread(work)
    return {"count": len(items), "items": items}


@router.delete("/tokens/{uuid}")
async def revoke_token(uuid: str, request: Request, mn: MnState = Depends(mn_of)) -> dict:
    """Revoke a token: it stops working at once (an account: only its own)."""
    caller = caller_of(request)

    def work() -> None:
        with session(mn) as ses:
            row = ses.get(ApiToken, uuid)
            if row is None or not (caller.admin or row.account_uuid == caller.account_uuid):
                raise NoSuchResource(f"no token {uuid}", next="list them with GET /v1/tokens")
            ses.delete(row)

    await asyncio.to_thread(work)
    return {"revoked": uuid}


@router.post("/tokens/rotate")
async def rotate_admin_token(mn: MnState = Depends(mn_of)) -> dict:
    """Replace the admin token (admin only): the old one stops working now; read the new
    one from the admin-token file in the MN's state folder."""
    if mn.token_file is None:
        raise Refused("this management node has no admin-token file to rotate",
                      next="rotate with `skylift mn token rotate` on the MN's machine")
    await asyncio.to_thread(rotate_token, mn.token_file)
    return {"rotated": "admin-token",
            "next": "read the new token from $SKYLIFT_HOME/mn/admin-token on the MN"}
