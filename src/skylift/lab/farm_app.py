"""The agent API of every farm host, from one app: the agent's own (skylift.agent.app).

Only the node is chosen per request, from the local address the client connected to
(scope["server"]), so one app and one listening socket serve thousands of hosts.
"""

from __future__ import annotations

import hmac
import json
import os

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from skylift.agent.app import (SelfUpgrade, agent_app, boot_doc, error_status, health_doc,
                               node_boot_id, take_upgrade_order, version_doc)
from skylift.agent.wire import UPGRADE_ROUTE
from skylift.errors import SkyliftError
from skylift.lab.farm_hosts import FarmHost


def create_farm_app(hosts: dict[str, FarmHost], token: str | None = None):
    """One ASGI app answering as the agent of whichever farm host the client dialled.

    GET health, version and boot-id (what a reconnect storm of thousands of hosts asks) and
    the upgrade order of a rollout are answered before FastAPI's routing and thread pool,
    which cost more than the answer: by the agent's own functions (its documents, its model
    of the order, take_upgrade_order). A request with a wrong token, or an order that does not
    validate, falls through to the agent's app for its 401 or 422.
    """

    def host_of(request: Request) -> FarmHost:
        server = request.scope.get("server") or ("", 0)
        host = hosts.get(server[0])
        if host is None or not host.up:
            raise HTTPException(503, detail=f"no farm host at {server[0]}")
        return host

    api = agent_app(host_of, token=token, title="skylift agent (farm)")
    kernel_boot_id = node_boot_id()
    pid = os.getpid()
    fast = {"/v1/health": health_doc, "/v1/version": version_doc,
            "/v1/boot-id": lambda h: boot_doc(h, pid, kernel_boot_id)}
    want = token.encode() if token else None

    async def app(scope, receive, send):
        doc = fast.get(scope.get("path")) if scope["type"] == "http" else None
        if doc is not None and scope["method"] == "GET":
            host = hosts.get((scope.get("server") or ("",))[0])
            if host is not None and host.up and (want is None or scope["path"] == "/v1/health"
                                                 or _token_ok(scope, want)):
                body = json.dumps(doc(host), separators=(",", ":")).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope.get("path") == UPGRADE_ROUTE):
            host = hosts.get((scope.get("server") or ("",))[0])
            if host is not None and host.up and (want is None or _token_ok(scope, want)):
                body = await _body(receive)
                try:
                    order = SelfUpgrade.model_validate_json(body)
                except ValidationError:
                    order = None
                if order is not None:
                    try:
                        answer = take_upgrade_order(host, order, scope.get("scheme", "http"))
                    except SkyliftError as exc:
                        answer = JSONResponse(exc.to_dict(), status_code=error_status(exc))
                    await answer(scope, receive, send)
                    return
                receive = _replay(body)
        await api(scope, receive, send)

    return app


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes):
    """A receive() that gives the app a body already read."""
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _token_ok(scope, want: bytes) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"x-skylift-token":
            return hmac.compare_digest(value, want)
    return False
