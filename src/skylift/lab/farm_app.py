"""The agent API of every farm host, from one FastAPI app.

The routes and JSON shapes are the agent's (skylift.agent.app): the same request models, the
same package database and volume code, the same hypervisor driver calls. Only the node is
chosen per request, from the local address the client connected to (scope["server"]), so one
app and one listening socket serve thousands of hosts.
"""

from __future__ import annotations

import hmac
import json
import os

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from skylift.agent import packages as pkgs
from skylift.agent import volumes as vols
from skylift.agent.app import TOKEN_HEADER, PackageInstall, VmCreate, VolumeRequest, node_boot_id
from skylift.errors import NoSuchVm, Refused, SkyliftError
from skylift.lab.farm_hosts import FarmHost


def health_doc(h: FarmHost) -> dict:
    return {"status": "ok", "uuid": h.uuid, "role": h.role}


def version_doc(h: FarmHost) -> dict:
    installed = pkgs.read_packages(h.node_root)
    return {"agent_version": h.agent_version, "role": h.role, "uuid": h.uuid,
            "os_release": h.os_release, "qemu": installed.get(pkgs.QEMU_PACKAGE),
            "libvirt": installed.get(pkgs.LIBVIRT_PACKAGE), "driver": "sim",
            "installed_agent_version": installed.get(pkgs.AGENT_PACKAGE)}


def boot_doc(h: FarmHost, pid: int, kernel_boot_id: str) -> dict:
    return {"agent_boot_id": h.agent_boot_id, "started_at": h.started_at, "pid": pid,
            "node_boot_id": kernel_boot_id}


def create_farm_app(hosts: dict[str, FarmHost], token: str | None = None):
    """One ASGI app answering as the agent of whichever farm host the client dialled.

    GET health, version and boot-id (what a reconnect storm of thousands of hosts asks) are
    answered before FastAPI's routing and validation, which cost more than the answer; the
    documents are the same functions the FastAPI routes return, and a request with a wrong
    token falls through to FastAPI for its 401.
    """
    api = _fastapi_app(hosts, token)
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


def _fastapi_app(hosts: dict[str, FarmHost], token: str | None) -> FastAPI:
    kernel_boot_id = node_boot_id()
    pid = os.getpid()

    def host_of(request: Request) -> FarmHost:
        server = request.scope.get("server") or ("", 0)
        host = hosts.get(server[0])
        if host is None or not host.up:
            raise HTTPException(503, detail=f"no farm host at {server[0]}")
        return host

    def check_token(x_skylift_token: str | None = Header(default=None)) -> None:
        if token and not hmac.compare_digest(x_skylift_token or "", token):
            raise HTTPException(401, detail={"error": "Unauthorized", "what": "bad agent token",
                                             "why": f"the {TOKEN_HEADER} header is missing or wrong",
                                             "next": "use the token the agent was started with"})

    app = FastAPI(title="skylift agent (farm)")
    auth = [Depends(check_token)]

    @app.exception_handler(SkyliftError)
    async def skylift_error(request: Request, exc: SkyliftError) -> JSONResponse:
        status = 404 if isinstance(exc, NoSuchVm) else 409 if isinstance(exc, Refused) else 500
        return JSONResponse(exc.to_dict(), status_code=status)

    # async where the answer is a small file read: cheaper than a hop to the thread pool
    @app.get("/v1/health")
    async def health(request: Request) -> dict:
        return health_doc(host_of(request))

    @app.get("/v1/version", dependencies=auth)
    async def version(request: Request) -> dict:
        return version_doc(host_of(request))

    @app.get("/v1/boot-id", dependencies=auth)
    async def boot_id(request: Request) -> dict:
        return boot_doc(host_of(request), pid, kernel_boot_id)

    @app.get("/v1/vms", dependencies=auth)
    def list_vms(request: Request) -> list[dict]:
        return [vm.to_dict() for vm in host_of(request).driver().list()]

    @app.post("/v1/vms", dependencies=auth)
    def create_vm(request: Request, req: VmCreate) -> dict:
        hv = host_of(request).driver()
        return hv.create(req.uuid, req.name, ha=req.ha, start=req.start).to_dict()

    @app.get("/v1/vms/{uuid}", dependencies=auth)
    def get_vm(request: Request, uuid: str) -> dict:
        return host_of(request).driver().get(uuid).to_dict()

    @app.post("/v1/vms/{uuid}/{action}", dependencies=auth)
    def vm_action(request: Request, uuid: str, action: str) -> dict:
        hv = host_of(request).driver()
        ops = {"start": hv.start, "stop": hv.stop, "reboot": hv.reboot}
        if action not in ops:
            raise HTTPException(404, detail=f"unknown VM action {action}")
        return ops[action](uuid).to_dict()

    @app.delete("/v1/vms/{uuid}", dependencies=auth)
    def destroy_vm(request: Request, uuid: str) -> dict:
        host_of(request).driver().destroy(uuid)
        return {"uuid": uuid, "destroyed": True}

    @app.get("/v1/volumes", dependencies=auth)
    def list_volumes(request: Request) -> list[dict]:
        return vols.list_volumes(host_of(request).node_root)

    @app.post("/v1/volumes", dependencies=auth)
    def volume(request: Request, req: VolumeRequest) -> dict:
        h = host_of(request)
        root = h.node_root
        if req.action == "create":
            return vols.create(root, req.uuid, req.size, req.format, req.shared)
        if req.action == "attach":
            def vm_exists(vm_uuid: str) -> bool:
                try:
                    h.driver().get(vm_uuid)
                    return True
                except NoSuchVm:
                    return False
            return vols.attach(root, req.uuid, req.vm_uuid or "", vm_exists)
        if req.action == "detach":
            return vols.detach(root, req.uuid)
        if req.action == "delete":
            vols.delete(root, req.uuid)
            return {"uuid": req.uuid, "deleted": True}
        raise HTTPException(422, detail=f"unknown volume action {req.action}")

    @app.get("/v1/packages", dependencies=auth)
    async def list_packages(request: Request) -> dict:
        return pkgs.read_packages(host_of(request).node_root)

    @app.post("/v1/packages", dependencies=auth)
    def install_package(request: Request, req: PackageInstall) -> dict:
        previous = pkgs.install(host_of(request).node_root, req.name, req.version)
        return {"name": req.name, "version": req.version, "previous": previous}

    return app
