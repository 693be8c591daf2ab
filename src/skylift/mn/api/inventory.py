"""Reading the inventory: all of it, one kind, or one resource (mounted last: generic paths).

An account's token reads only its own resources of the kinds a tenant can own (the gate
refuses the rest with 403); another account's resource is a 404, as if it did not exist.
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request

from skylift.db.inventory import resource_counts
from skylift.errors import UsageError
from skylift.mn.access import caller_of
from skylift.mn.api import mn_of
from skylift.mn.api.fields import INT64_MAX
from skylift.mn.api.owners import owned_uuids, require_owned
from skylift.mn.api.rows import KINDS, as_dict, get_or_404, is_secret, kind_class, session
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1", tags=["inventory"])
MAX_PAGE = 1_000_000  # rows in one page (without limit: all of them)
# the columns a search (?q=) looks in, where a kind has them
SEARCHED = ("uuid", "name", "management_ip", "state", "status")
MAX_QUERY = 128  # characters of a search


def matching(cls: type, q: str) -> list:
    """The WHERE clause of a search: q, case-insensitive, within any searched column."""
    text = q.strip().lower()
    if not text:
        return []
    # "!" escapes: a backslash means something else again in MariaDB's string literals
    pattern = "%" + text.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
    columns = [getattr(cls, c) for c in SEARCHED if c in cls.__table__.c]
    return [sa.or_(*(sa.func.lower(c).like(pattern, escape="!") for c in columns))]


def equal_to(cls: type, params) -> list:
    """The WHERE clause of column filters: every query parameter naming a column (not a secret)
    keeps the rows whose value equals it; another unknown parameter is a usage error."""
    out = []
    for name, value in params.multi_items():
        if name in ("limit", "offset", "q"):
            continue
        if name not in cls.__table__.c or is_secret(name):
            raise UsageError(f"{cls.__tablename__} has no column '{name}' to filter on",
                             next="filter on one of: " + ", ".join(
                                 c for c in cls.__table__.c.keys() if not is_secret(c)))
        out.append(cls.__table__.c[name] == value)
    return out


@router.get("/inventory")
def inventory(mn: MnState = Depends(mn_of)) -> dict:
    """Every resource kind with all its rows (never a secret: see rows.as_dict)."""
    out = {}
    with session(mn) as ses:
        for kind, cls in KINDS.items():
            out[kind] = [as_dict(o) for o in ses.scalars(sa.select(cls).order_by(cls.uuid))]
    return {"release": mn.run.release, "counts": {k: len(v) for k, v in out.items()},
            "inventory": out}


@router.get("/inventory/counts")
def counts(mn: MnState = Depends(mn_of)) -> dict:
    """Row count per resource kind (the names skylift.db.inventory uses at every release)."""
    with mn.engine.connect() as conn:
        return {"release": mn.run.release, "counts": resource_counts(conn)}


@router.get("/{kind}")
def list_kind(request: Request, kind: str, limit: int | None = Query(None, ge=1, le=MAX_PAGE),
              offset: int = Query(0, ge=0, le=INT64_MAX),
              q: str = Query("", max_length=MAX_QUERY), mn: MnState = Depends(mn_of)) -> dict:
    """The rows of one kind (e.g. zones, hosts, vm_instances), by uuid (an account: its own);
    `q` keeps those whose uuid, name, address, state or status contains it (any case), and a
    column's name keeps those equal to its value (?cluster_uuid=…&status=Connected)."""
    cls = kind_class(kind)
    caller = caller_of(request)
    mine = [] if caller.admin else [cls.uuid.in_(owned_uuids(kind, caller.account_uuid))]
    mine += matching(cls, q) + equal_to(cls, request.query_params)
    with session(mn) as ses:
        total = ses.execute(sa.select(sa.func.count()).select_from(cls)
                            .where(*mine)).scalar_one()
        query = sa.select(cls).where(*mine).order_by(cls.uuid).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        rows = [as_dict(o) for o in ses.scalars(query)]
    return {"kind": kind, "total": total, "count": len(rows), "items": rows}


@router.get("/{kind}/{uuid}")
def get_one(request: Request, kind: str, uuid: str, mn: MnState = Depends(mn_of)) -> dict:
    """One resource (an account: only its own)."""
    cls = kind_class(kind)
    with session(mn) as ses:
        require_owned(ses, caller_of(request), kind, uuid)
        return as_dict(get_or_404(ses, cls, uuid))
