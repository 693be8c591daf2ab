"""Which account owns a resource, as the routes see it: the caller, owner checks that answer
404 for another account's resource (its existence does not leak), owner filters for lists,
and recording and forgetting an owner.

The admin sees and changes everything. An account sees and changes only the resources whose
row in account_resource_refs names it; a resource without a row is the admin's alone.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from skylift.db.models.identity import Account, AccountResourceRef
from skylift.errors import Forbidden, NoSuchResource
from skylift.mn.access import OWNABLE, Caller, caller_of
from skylift.mn.api import mn_of
from skylift.mn.api.rows import get_or_404, session
from skylift.mn.state import MnState
from skylift.mn.tokens import ADMIN_TYPE


def owned_uuids(kind: str, account_uuid: str | None) -> sa.Select:
    """The uuids of an account's resources of one kind (a subquery for IN)."""
    return sa.select(AccountResourceRef.resource_uuid).where(
        AccountResourceRef.resource_type == kind, AccountResourceRef.account_uuid == account_uuid)


def owns(ses: Session, caller: Caller, kind: str, uuid: str) -> bool:
    """Whether the caller may see this resource (the admin: always)."""
    if caller.admin:
        return True
    ref = ses.get(AccountResourceRef, (kind, uuid))
    return ref is not None and ref.account_uuid == caller.account_uuid


def require_owned(ses: Session, caller: Caller, kind: str, uuid: str) -> None:
    """NoSuchResource (404) unless the caller may see this resource — the same answer as for
    a resource that does not exist."""
    if not owns(ses, caller, kind, uuid):
        raise NoSuchResource(f"no {kind} row {uuid}", next=f"list them with GET /v1/{kind}")


def path_owner_check(kind: str):
    """A router dependency: the resource named by the path's {uuid} must be the caller's."""

    async def check(request: Request, mn: MnState = Depends(mn_of)) -> None:
        caller, uuid = caller_of(request), request.path_params.get("uuid")
        if caller.admin or uuid is None:
            return

        def look() -> None:
            with session(mn) as ses:
                require_owned(ses, caller, kind, uuid)

        await asyncio.to_thread(look)

    return check


def owner_for_new(ses: Session, caller: Caller, requested: str | None) -> str | None:
    """The account a new resource will belong to: the caller's own account; the admin may
    name any account (default: the SystemAdmin account, or none when the cloud has none)."""
    if not caller.admin:
        if requested not in (None, caller.account_uuid):
            raise Forbidden("an account creates resources only for itself",
                            next="leave account_uuid out, or give your own account's uuid")
        return caller.account_uuid
    if requested is not None:
        return get_or_404(ses, Account, requested).uuid
    if caller.account_uuid is not None:
        return caller.account_uuid
    return ses.scalars(sa.select(Account.uuid).where(Account.type == ADMIN_TYPE)
                       .order_by(Account.created_at, Account.uuid).limit(1)).first()


def record_owner(ses: Session, kind: str, uuid: str, account_uuid: str | None) -> None:
    """Record who owns a new resource (nothing for a resource that stays the admin's alone)."""
    if kind not in OWNABLE:
        raise ValueError(f"{kind} is not a kind a tenant can own")
    if account_uuid is not None:
        ses.add(AccountResourceRef(resource_type=kind, resource_uuid=uuid,
                                   account_uuid=account_uuid))


def forget_owner(ses: Session, kind: str, uuids: list[str]) -> None:
    """Drop the owner rows of resources being deleted."""
    if uuids:
        ses.execute(sa.delete(AccountResourceRef).where(
            AccountResourceRef.resource_type == kind,
            AccountResourceRef.resource_uuid.in_(uuids)))
