"""The agent API of every farm host, from one app: the agent's own (skylift.agent.app).

Only the node is chosen per request, from the local address the client connected to
(scope["server"]), so one app and one listening socket serve thousands of hosts.
"""

from __future__ import annotations

import hmac
import json
import os

from fastapi import HTTPException, Request

from skylift.agent.app import agent_app, boot_doc, health_doc, node_boot_id, version_doc
from skylift.lab.farm_hosts import FarmHost


def create_farm_app(hosts: dict[str, FarmHost], token: str | None = None):
    """One ASGI app answering as the agent of whichever farm host the client dialled.

    GET health, version and boot-id (what a reconnect storm of thousands of hosts asks) are
    answered before FastAPI's routing and validation, which cost more than the answer; the
    documents are the agent's own, and a request with a wrong token falls through to the
    agent's app for its 401.
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
        await api(scope, receive, send)

    return app


def _token_ok(scope, want: bytes) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"x-skylift-token":
            return hmac.compare_digest(value, want)
    return False
