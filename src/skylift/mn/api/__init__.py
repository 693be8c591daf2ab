"""The management node's REST API, one module per area (mounted by skylift.mn.app)."""

from __future__ import annotations

from fastapi import Request

from skylift.mn.state import MnState


def mn_of(request: Request) -> MnState:
    """The running MN's state (a FastAPI dependency)."""
    return request.app.state.mn
