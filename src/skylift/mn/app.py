"""Wiring the management node's app: middleware, routers, lifespan. Serving lives in api/*.

Normal mode runs the connection manager (and VM HA) in the app's lifespan; maintenance mode
mounts only the calls that work against a database of any release (health, version, global
settings, drain), and never imports the newest models. Both run the quorum watch
(skylift.mn.quorum), which does nothing unless the database is a Galera member.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from skylift import __version__
from skylift.mn import console
from skylift.mn.api import cluster as api_cluster
from skylift.mn.api import errors as api_errors
from skylift.mn.api import settings as api_settings
from skylift.mn.api import system as api_system
from skylift.mn.api import upgrade as api_upgrade
from skylift.mn.body_limit import MAX_BODY, BodyLimitMiddleware
from skylift.mn.gate import GateMiddleware
from skylift.mn.headers import SecurityHeadersMiddleware
from skylift.mn.inflight import InFlightMiddleware
from skylift.mn.parts import start_parts, stop_parts
from skylift.mn.quorum import QuorumWatch
from skylift.mn.state import MnState
from skylift.repo.routes import router as repo_router

log = logging.getLogger("skylift.mn")


def create_app(mn: MnState) -> FastAPI:
    """The MN's FastAPI app for this state (mode decided before)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if mn.heartbeat is not None:
            await asyncio.to_thread(mn.heartbeat.start)
        if not mn.run.maintenance:
            await start_parts(mn)
        quorum = QuorumWatch(mn)
        await quorum.start()
        try:
            yield
        finally:
            await quorum.stop()  # first: it must not start the parts again
            await stop_parts(mn)
            if mn.heartbeat is not None:
                await asyncio.to_thread(mn.heartbeat.stop)

    # no /docs or /redoc: their pages load scripts from a CDN; /openapi.json stays
    app = FastAPI(title="skylift management node", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description=f"Mode: {mn.run.mode}. Auth: 'Authorization: Bearer <token>' "
                              "with the token in $SKYLIFT_HOME/mn/admin-token. Bodies of at "
                              "most 1 MiB.")
    app.state.mn = mn
    api_errors.install(app, mn.db.display())  # the last-resort JSON 500: innermost
    app.include_router(api_system.router)
    app.include_router(api_cluster.router)
    app.include_router(api_settings.router)
    app.include_router(api_settings.ha_router)
    app.include_router(api_upgrade.router)
    app.include_router(console.router(release=mn.run.release))
    if not mn.run.maintenance:
        for name in ("infrastructure", "network", "hosts", "connections", "catalog", "vms",
                     "volumes", "tokens", "management_nodes", "overview",
                     "inventory"):  # the generic reader last
            module = importlib.import_module(f"skylift.mn.api.{name}")
            app.include_router(module.router)
    # the node's local package repository; hosts install from it without a token
    app.include_router(repo_router(mn.node_root), prefix="/repo", include_in_schema=False)
    # added innermost first; a request passes them outermost first: the security headers
    # (on every answer), every call listed in flight, the gate decides, the body's size
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY)
    app.add_middleware(GateMiddleware, mn=mn)
    app.add_middleware(InFlightMiddleware, registry=mn.inflight)
    app.add_middleware(SecurityHeadersMiddleware)
    return app

