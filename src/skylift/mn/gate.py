"""The gate every request passes: who calls (a token), what they may call, then maintenance
and drain.

A call carries the admin token (the admin-token file, re-read when rotated) or an account's
token (skylift.mn.tokens; not in maintenance, whose database may predate them). A missing,
wrong, expired or revoked token is a 401 and counts as a failed authentication of the
client's address; past the limit (skylift.mn.auth_limit) that address gets 429 with
Retry-After until the window passes, except for the admin token, which is checked first. An
account's token on a call it may not make (skylift.mn.access) is a 403. The caller is left
in the request's state for the routes, which decide which rows an account sees.

Open without a token: health, version, the console page and its assets, the API description
(/openapi.json; there is no /docs or /redoc: they load their pages from a CDN) and the local
package repository (hosts install from it). In maintenance mode, or once
drained, only health, version, global settings, drain, the in-flight list, the console and the
repository are served; everything else gets 503 "upgrade in progress" with Retry-After, never a refused
connection. While the MN's Galera member is out of quorum (skylift.mn.quorum) the same calls
are served, less those that need the database (global settings, VM HA's view: the member
refuses every statement), and the 503 is QuorumLost with the member's finding.
"""

from __future__ import annotations

import asyncio
import json
import logging

from sqlalchemy.exc import SQLAlchemyError

from skylift.errors import (DatabaseError, Forbidden, NotAuthorized, QuorumLost,
                            SkyliftError, TooManyAttempts, UpgradeInProgress)
from skylift.mn.access import ADMIN, Caller, tenant_may
from skylift.mn.auth import AdminToken, bearer
from skylift.mn.tokens import caller_of_token

log = logging.getLogger("skylift.mn")
MAX_TOKEN = 256  # characters; a longer "token" is refused without a lookup

RETRY_AFTER = "30"
OPEN_EXACT = {"/", "/v1/health", "/v1/version", "/openapi.json", "/favicon.ico",
              "/v1/console/assets"}
OPEN_PREFIX = ("/static/", "/repo/")
# (method or None for any, path or prefix ending with /) served while the MN is in maintenance
MAINTENANCE_OPEN = [("GET", "/v1/health"), ("GET", "/v1/version"), ("POST", "/v1/drain"),
                    (None, "/v1/global-settings"), (None, "/v1/global-settings/"),
                    ("GET", "/v1/api-calls"), ("GET", "/v1/console/assets"), ("GET", "/v1/ha"),
                    ("GET", "/v1/cluster"), ("GET", "/v1/session"), ("GET", "/v1/upgrade"),
                    ("GET", "/"), ("GET", "/static/"), ("GET", "/openapi.json"),
                    # the local repository is files: hosts install from it whatever the mode
                    # (an MN of an older release serves it as its web server did)
                    (None, "/repo/")]


# maintenance calls that read or write the cloud's tables: refused too while quorum is lost
NEEDS_QUORUM = ("/v1/global-settings", "/v1/ha")


def needs_quorum(path: str) -> bool:
    """Whether a maintenance call needs the database to take statements."""
    return any(path == p or path.startswith(p + "/") for p in NEEDS_QUORUM)


def is_open(path: str) -> bool:
    """Whether a path is served without the admin token."""
    return path in OPEN_EXACT or path.startswith(OPEN_PREFIX)


def allowed_in_maintenance(method: str, path: str) -> bool:
    """Whether a call is served while the MN is in maintenance or drained."""
    for want_method, want in MAINTENANCE_OPEN:
        if want_method not in (None, method) and not (method == "HEAD" and want_method == "GET"):
            continue
        if path == want or (want.endswith("/") and want != "/" and path.startswith(want)):
            return True
    return False


async def send_error(send, status: int, error, headers: dict[str, str] | None = None) -> None:
    """Send a skylift error as the JSON body {error, what, why, next}."""
    body = json.dumps(error.to_dict()).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def upgrade_in_progress(why: str) -> UpgradeInProgress:
    return UpgradeInProgress("upgrade in progress", why=why,
                             next=f"retry in {RETRY_AFTER} s; run API calls at a quiet time "
                                  "while the cloud is upgraded")


def refusal(mn) -> SkyliftError:
    """Why a restricted MN refuses a call: its database member out of quorum, or an upgrade."""
    if mn.quorum_lost:
        return QuorumLost("the management node's database member is out of quorum",
                          why=mn.restricted_why,
                          next=f"retry in {RETRY_AFTER} s, or call another management node "
                               "of the cloud (the VIP moves to one that serves)")
    return upgrade_in_progress(mn.restricted_why)


def not_authorized() -> NotAuthorized:
    # one answer for missing, wrong, expired and revoked: a guesser learns nothing
    return NotAuthorized("the token is missing, wrong, expired or revoked",
                         next="send 'Authorization: Bearer <token>' with the admin token "
                              "($SKYLIFT_HOME/mn/admin-token) or a current account token")


class GateMiddleware:
    """ASGI middleware: 401/429 without a valid token, 403 for an account on an admin call,
    503 for most calls during maintenance/drain."""

    def __init__(self, app, mn) -> None:
        self.app = app
        self.mn = mn  # skylift.mn.state.MnState
        self.admin = AdminToken(mn.token_file, mn.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if not is_open(path):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", [])
                           if k.lower() == b"authorization"), None)
            caller: Caller | None = ADMIN if self.admin.matches(header) else None
            if caller is None:
                client = (scope.get("client") or ("unknown",))[0]
                wait = self.mn.auth_failures.retry_after(client)
                if wait:
                    return await send_error(send, 429, TooManyAttempts(
                        "too many failed authentications from this address",
                        next=f"retry in {wait} s with a valid token"), {"Retry-After": str(wait)})
                try:
                    caller = await self._account(header)
                except SQLAlchemyError as exc:
                    log.warning("cannot check an account token: %s", type(exc).__name__)
                    return await send_error(send, 503, DatabaseError(
                        "the token cannot be checked now", why="the database did not answer",
                        next=f"retry in {RETRY_AFTER} s"), {"Retry-After": RETRY_AFTER})
                if caller is None:
                    self.mn.auth_failures.failed(client)
                    return await send_error(send, 401, not_authorized(),
                                            {"WWW-Authenticate": "Bearer"})
            if not caller.admin and not tenant_may(method, path):
                return await send_error(send, 403, Forbidden(
                    f"an account's token may not call {method} {path}",
                    why="hosts, settings, connections, accounts, the whole inventory and the "
                        "upgrade's calls are the admin's",
                    next="ask the cloud's admin, or use the admin token"))
            scope.setdefault("state", {})["caller"] = caller
        if self.mn.restricted and (not allowed_in_maintenance(method, path)
                                   or (self.mn.quorum_lost and needs_quorum(path))):
            return await send_error(send, 503, refusal(self.mn), {"Retry-After": RETRY_AFTER})
        return await self.app(scope, receive, send)

    async def _account(self, header: str | None) -> Caller | None:
        """The account a token belongs to (None: none, or in maintenance, whose database may
        predate account tokens)."""
        token = bearer(header)
        if token is None or len(token) > MAX_TOKEN or self.mn.run.maintenance:
            return None

        def lookup() -> Caller | None:
            with self.mn.engine.connect() as conn:
                return caller_of_token(conn, token)

        return await asyncio.to_thread(lookup)
