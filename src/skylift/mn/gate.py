"""The gate every request passes: the admin token, then maintenance and drain.

Open without a token: health, version, the console page and its assets, the API description
(/openapi.json; there is no /docs or /redoc: they load their pages from a CDN) and the local
package repository (hosts install from it). In maintenance mode, or once
drained, only health, version, global settings, drain, the in-flight list and the console are
served; everything else gets 503 "upgrade in progress" with Retry-After, never a refused
connection.
"""

from __future__ import annotations

import json

from skylift.errors import NotAuthorized, UpgradeInProgress
from skylift.mn.auth import token_matches

RETRY_AFTER = "30"
OPEN_EXACT = {"/", "/v1/health", "/v1/version", "/openapi.json", "/favicon.ico",
              "/v1/console/assets"}
OPEN_PREFIX = ("/static/", "/repo/")
# (method or None for any, path or prefix ending with /) served while the MN is in maintenance
MAINTENANCE_OPEN = [("GET", "/v1/health"), ("GET", "/v1/version"), ("POST", "/v1/drain"),
                    (None, "/v1/global-settings"), (None, "/v1/global-settings/"),
                    ("GET", "/v1/api-calls"), ("GET", "/v1/console/assets"), ("GET", "/v1/ha"),
                    ("GET", "/"), ("GET", "/static/"), ("GET", "/openapi.json")]


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


class GateMiddleware:
    """ASGI middleware: 401 without the token, 503 for most calls during maintenance/drain."""

    def __init__(self, app, mn) -> None:
        self.app = app
        self.mn = mn  # skylift.mn.state.MnState

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if not is_open(path):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope.get("headers", [])}
            if not token_matches(headers.get("authorization"), self.mn.token):
                return await send_error(send, 401, NotAuthorized(
                    "the admin token is missing or wrong",
                    next="send 'Authorization: Bearer <token>' with the token in "
                         "$SKYLIFT_HOME/mn/admin-token"), {"WWW-Authenticate": "Bearer"})
        if self.mn.restricted and not allowed_in_maintenance(method, path):
            return await send_error(send, 503, upgrade_in_progress(self.mn.restricted_why),
                                    {"Retry-After": RETRY_AFTER})
        return await self.app(scope, receive, send)
