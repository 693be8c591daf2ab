"""The agent's HTTP API (FastAPI): health, version, VMs, volumes and packages of one node.

VM operations go to the hypervisor driver; the agent keeps no VM state of its own, which is
why it can be killed, restarted or upgraded under running VMs.
"""

from __future__ import annotations

import hmac
import os
import time
import uuid as uuidlib
from pathlib import Path

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from skylift.agent import packages as pkgs
from skylift.agent import volumes as vols
from skylift.agent.hypervisor import get_driver
from skylift.agent.node import read_node
from skylift.errors import NoSuchVm, Refused, SkyliftError

TOKEN_HEADER = "X-Skylift-Token"


class VmCreate(BaseModel):
    uuid: str
    name: str
    ha: bool = False
    start: bool = True


class VolumeRequest(BaseModel):
    """POST /v1/volumes: action create (uuid, size, format, shared), attach (vm_uuid), detach, delete."""

    action: str = "create"
    uuid: str
    size: int = 0
    format: str = "qcow2"
    shared: bool = False
    vm_uuid: str | None = None


class PackageInstall(BaseModel):
    name: str
    version: str


def node_boot_id() -> str:
    """The kernel's boot id of the machine the agent runs on."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def create_app(node_root: Path, driver: str = "sim", host: str = "127.0.0.1",
               token: str | None = None) -> FastAPI:
    """The agent app for one node root; the node must have been initialised (node.json)."""
    node_root = Path(node_root).resolve()
    node = read_node(node_root)
    if node is None:
        raise Refused(f"{node_root} is not a node root", why="node.json is missing",
                      next="initialise it (skylift agent serve --role ROLE creates it)")
    hv = get_driver(driver, node_root, host)
    # the running agent's version is the one installed when it started: an upgrade of the
    # package shows only after a restart, as with a real daemon
    agent_version = pkgs.installed_version(node_root, pkgs.AGENT_PACKAGE) or "unknown"
    instance = {"agent_boot_id": uuidlib.uuid4().hex, "started_at": time.time(),
                "pid": os.getpid(), "node_boot_id": node_boot_id()}

    def check_token(x_skylift_token: str | None = Header(default=None)) -> None:
        if token and not hmac.compare_digest(x_skylift_token or "", token):
            raise HTTPException(401, detail={"error": "Unauthorized", "what": "bad agent token",
                                             "why": f"the {TOKEN_HEADER} header is missing or wrong",
                                             "next": "use the token the agent was started with"})

    app = FastAPI(title=f"skylift agent ({node.role})", version=agent_version)
    auth = [Depends(check_token)]

    @app.exception_handler(SkyliftError)
    async def skylift_error(request: Request, exc: SkyliftError) -> JSONResponse:
        status = 404 if isinstance(exc, NoSuchVm) else 409 if isinstance(exc, Refused) else 500
        return JSONResponse(exc.to_dict(), status_code=status)

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok", "uuid": node.uuid, "role": node.role}

    @app.get("/v1/version", dependencies=auth)
    def version() -> dict:
        installed = pkgs.read_packages(node_root)
        return {"agent_version": agent_version, "role": node.role, "uuid": node.uuid,
                "os_release": node.os_release, "qemu": installed.get(pkgs.QEMU_PACKAGE),
                "libvirt": installed.get(pkgs.LIBVIRT_PACKAGE), "driver": hv.name,
                "installed_agent_version": installed.get(pkgs.AGENT_PACKAGE)}

    @app.get("/v1/boot-id", dependencies=auth)
    def boot_id() -> dict:
        return instance

    @app.get("/v1/vms", dependencies=auth)
    def list_vms() -> list[dict]:
        return [vm.to_dict() for vm in hv.list()]

    @app.post("/v1/vms", dependencies=auth)
    def create_vm(req: VmCreate) -> dict:
        return hv.create(req.uuid, req.name, ha=req.ha, start=req.start).to_dict()

    @app.get("/v1/vms/{uuid}", dependencies=auth)
    def get_vm(uuid: str) -> dict:
        return hv.get(uuid).to_dict()

    @app.post("/v1/vms/{uuid}/{action}", dependencies=auth)
    def vm_action(uuid: str, action: str) -> dict:
        ops = {"start": hv.start, "stop": hv.stop, "reboot": hv.reboot}
        if action not in ops:
            raise HTTPException(404, detail=f"unknown VM action {action}")
        return ops[action](uuid).to_dict()

    @app.delete("/v1/vms/{uuid}", dependencies=auth)
    def destroy_vm(uuid: str) -> dict:
        hv.destroy(uuid)
        return {"uuid": uuid, "destroyed": True}

    @app.get("/v1/volumes", dependencies=auth)
    def list_volumes() -> list[dict]:
        return vols.list_volumes(node_root)

    @app.post("/v1/volumes", dependencies=auth)
    def volume(req: VolumeRequest) -> dict:
        if req.action == "create":
            return vols.create(node_root, req.uuid, req.size, req.format, req.shared)
        if req.action == "attach":
            return vols.attach(node_root, req.uuid, req.vm_uuid or "", _vm_exists)
        if req.action == "detach":
            return vols.detach(node_root, req.uuid)
        if req.action == "delete":
            vols.delete(node_root, req.uuid)
            return {"uuid": req.uuid, "deleted": True}
        raise HTTPException(422, detail=f"unknown volume action {req.action}")

    def _vm_exists(vm_uuid: str) -> bool:
        try:
            hv.get(vm_uuid)
            return True
        except NoSuchVm:
            return False

    @app.get("/v1/packages", dependencies=auth)
    def list_packages() -> dict:
        return pkgs.read_packages(node_root)

    @app.post("/v1/packages", dependencies=auth)
    def install_package(req: PackageInstall) -> dict:
        previous = pkgs.install(node_root, req.name, req.version)
        return {"name": req.name, "version": req.version, "previous": previous}

    return app
