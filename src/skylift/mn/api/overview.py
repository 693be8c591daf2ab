"""The overview an operator checks before and after an upgrade: hosts by status, VMs by
state, agents by version, resources by kind — grouped in the database, so it stays one small
answer at 10,000 VMs."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from skylift.db.inventory import resource_counts
from skylift.db.models.compute import VmInstance
from skylift.db.models.infrastructure import Host
from skylift.db.models.network import VpcVRouter
from skylift.mn.api import mn_of
from skylift.mn.state import MnState

router = APIRouter(prefix="/v1", tags=["overview"])


def _grouped(conn: sa.Connection, column) -> dict[str, int]:
    rows = conn.execute(sa.select(column, sa.func.count()).group_by(column)).all()
    return {str(value) if value is not None else "unknown": n
            for value, n in sorted(rows, key=lambda r: -r[1])}


def _agents(conn: sa.Connection) -> dict[str, int]:
    """Agents (hosts and vRouters) by the version the MN last saw them run."""
    out: dict[str, int] = {}
    for model in (Host, VpcVRouter):
        for version, n in _grouped(conn, model.agent_version).items():
            out[version] = out.get(version, 0) + n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _view(mn: MnState) -> dict:
    with mn.engine.connect() as conn:
        return {"release": mn.run.release, "mode": mn.mode,
                "hosts_by_status": _grouped(conn, Host.status),
                "hosts_by_state": _grouped(conn, Host.state),
                "vms_by_state": _grouped(conn, VmInstance.state),
                "agents_by_version": _agents(conn),
                "counts": resource_counts(conn)}


@router.get("/overview")
async def overview(mn: MnState = Depends(mn_of)) -> dict:
    """Hosts by status and state, VMs by state, agents by version, resources by kind."""
    return await asyncio.to_thread(_view, mn)
