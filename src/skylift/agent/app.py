"""The agent's HTTP API (FastAPI): health, version, VMs, volumes and packages of one node.

VM operations go to the hypervisor driver; the agent keeps no VM state of its own, which is
why it can be killed, restarted or upgraded under running VMs. The routes find their node
through a lookup (agent_app's node_of): an agent has one; the lab's host farm serves these
same routes for thousands of simulated hosts, choosing one by the address dialled.

Every identifier is validated here, at the edge (skylift.agent.ids): a uuid in a path or a
body is exactly uuid.uuid4().hex, package names and versions are those of a repository index.
A bad one is answered 422 in the agent's error format (UsageError: what, why, next) before
any driver or store sees it; those check again behind the API.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Path as PathParam, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from skylift.agent import packages as pkgs
from skylift.agent import self_upgrade
from skylift.agent import volumes as vols
from skylift.agent.code import public_code
from skylift.agent.handover import Listener
from skylift.agent.hypervisor import HypervisorDriver, get_driver
from skylift.agent.ids import (PACKAGE_NAME_PATTERN, PACKAGE_VERSION_PATTERN, RULES,
                               UUID_PATTERN, UUID_RULE)
from skylift.agent.node import read_node
from skylift.agent.service import spec_path
from skylift.units import systemd_running
from skylift.pki.trust import node_tls_files
from skylift.agent.wire import INVENTORY_ROUTE, TOKEN_HEADER, UPGRADE_ROUTE
from skylift.errors import NoSuchVm, Refused, SkyliftError, UsageError
from skylift.lineage import answers_inventory

log = logging.getLogger(__name__)

# a uuid as the MN and the lab make them (uuid.uuid4().hex), in a body or in a path
Uuid = Annotated[str, Field(pattern=UUID_PATTERN, description=UUID_RULE)]
UuidInPath = Annotated[str, PathParam(pattern=UUID_PATTERN, description=UUID_RULE)]


class VmCreate(BaseModel):
    uuid: Uuid
    name: str
    ha: bool = False
    start: bool = True


class VolumeRequest(BaseModel):
    """POST /v1/volumes: action create (uuid, size, format, shared), attach (vm_uuid), detach, delete."""

    action: str = "create"
    uuid: Uuid
    size: int = 0
    format: str = "qcow2"
    shared: bool = False
    vm_uuid: Uuid | None = None


class PackageInstall(BaseModel):
    name: Annotated[str, Field(pattern=PACKAGE_NAME_PATTERN)]
    version: Annotated[str, Field(pattern=PACKAGE_VERSION_PATTERN)]


class SelfUpgrade(BaseModel):
    """POST /v1/agent/upgrade: the skylift-agent version to run, and the MN's digest of it."""

    version: Annotated[str, Field(pattern=PACKAGE_VERSION_PATTERN)]
    sha256: Annotated[str | None, Field(pattern=r"^[0-9a-f]{64}$")] = None


def node_boot_id() -> str:
    """The kernel's boot id of the machine the agent runs on."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


class ServedNode(Protocol):
    """What the routes read of the node a request is for (an agent serves one; the lab's host
    farm serves thousands from one process, picking one per request)."""

    node_root: Path
    uuid: str
    role: str
    os_release: str
    agent_version: str  # installed when the agent started: an upgrade shows after a restart
    agent_boot_id: str  # new at every start of the agent
    started_at: float
    driver_name: str
    serves_tls: bool  # only clients the cloud's CA certified reach it
    restarts_itself: bool  # it can restart onto a newly installed version (self_upgrade)

    def driver(self) -> HypervisorDriver: ...

    def restart_soon(self) -> object: ...

    def hand_over(self) -> dict | None:
        """Start the agent now installed on this one's listening socket and return its
        version document once it serves; None when this agent can only restart."""

    def exit_after_answer(self) -> object: ...


# The node a request is for; raises HTTPException when none answers there.
NodeLookup = Callable[[Request], ServedNode]


class LocalNode:
    """The one node of an agent process: its node root, identity and hypervisor driver."""

    def __init__(self, node_root: Path, driver: str, host: str) -> None:
        self.node_root = Path(node_root).resolve()
        node = read_node(self.node_root)
        if node is None:
            raise Refused(f"{self.node_root} is not a node root", why="node.json is missing",
                          next="initialise it (skylift agent serve --role ROLE creates it)")
        self.uuid, self.role, self.os_release = node.uuid, node.role, node.os_release
        self._driver = get_driver(driver, self.node_root, host)
        self.driver_name = self._driver.name
        code = public_code()
        # run from an installed agent package, the agent is the release of its code; a
        # development checkout (the lab's agents) is what the package database says
        self.agent_version = (code["version"] if code["source"] == "package" else
                              pkgs.installed_version(self.node_root, pkgs.AGENT_PACKAGE)
                              ) or "unknown"
        self.agent_boot_id = uuidlib.uuid4().hex
        self.started_at = time.time()
        # as skylift.agent.server serves it: TLS only once the node holds a certificate
        self.serves_tls = node_tls_files(self.node_root) is not None
        # run by the node's agent service, it can ask that service to restart it
        self.restarts_itself = spec_path(self.node_root).is_file()
        self.listener: Listener | None = None  # set by skylift.agent.server when it serves

    def driver(self) -> HypervisorDriver:
        return self._driver

    def restart_soon(self) -> None:
        """Restart this agent onto the code now installed (after its answer is sent)."""
        self_upgrade.restart_service_detached(self.node_root)

    def hand_over(self) -> dict | None:
        """Hand this agent's socket to the agent now installed (skylift.agent.handover): only
        a detached service agent serving its own socket can; one whose successor did not
        come up restarts instead, as before."""
        if self.listener is None or not self.restarts_itself or systemd_running():
            return None
        try:
            return self_upgrade.hand_over_to_installed(self.node_root, self.listener)
        except SkyliftError as exc:  # HandoverFailed, or a service without its spec
            log.warning("agent handover failed, restarting instead: %s (%s)", exc.what, exc.why)
            return None

    def exit_after_answer(self) -> None:
        self.listener.exit_when_idle()


def health_doc(node: ServedNode) -> dict:
    return {"status": "ok", "uuid": node.uuid, "role": node.role}


def version_doc(node: ServedNode) -> dict:
    installed = pkgs.read_packages(node.node_root)
    return {"agent_version": node.agent_version, "role": node.role, "uuid": node.uuid,
            "os_release": node.os_release, "qemu": installed.get(pkgs.QEMU_PACKAGE),
            "libvirt": installed.get(pkgs.LIBVIRT_PACKAGE), "driver": node.driver_name,
            "installed_agent_version": installed.get(pkgs.AGENT_PACKAGE),
            "code": public_code(), "self_upgrade": self_upgrade.can_upgrade_itself(node)}


def boot_doc(node: ServedNode, pid: int, kernel_boot_id: str) -> dict:
    return {"agent_boot_id": node.agent_boot_id, "started_at": node.started_at, "pid": pid,
            "node_boot_id": kernel_boot_id}


def create_app(node_root: Path, driver: str = "sim", host: str = "127.0.0.1",
               token: str | None = None) -> FastAPI:
    """The agent app for one node root; the node must have been initialised (node.json)."""
    node = LocalNode(node_root, driver, host)
    app = agent_app(lambda request: node, token=token, title=f"skylift agent ({node.role})",
                    version=node.agent_version)
    app.state.node = node
    return app


def agent_app(node_of: NodeLookup, *, token: str | None = None, title: str = "skylift agent",
              version: str = "unknown") -> FastAPI:
    """The agent's routes, each answering for the node `node_of` picks for the request."""
    pid, kernel_boot_id = os.getpid(), node_boot_id()

    # async: a sync dependency costs a hop to the thread pool on every call
    async def check_token(x_skylift_token: str | None = Header(default=None)) -> None:
        if token and not hmac.compare_digest(x_skylift_token or "", token):
            raise HTTPException(401, detail={"error": "Unauthorized", "what": "bad agent token",
                                             "why": f"the {TOKEN_HEADER} header is missing or wrong",
                                             "next": "use the token the agent was started with"})

    # no redirect of "/v1/vms/" to "/v1/vms": an empty id is a 404, never another route
    app = FastAPI(title=title, version=version, redirect_slashes=False)
    auth = [Depends(check_token)]

    @app.exception_handler(SkyliftError)
    async def skylift_error(request: Request, exc: SkyliftError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=error_status(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = validation_error(request.method, request.url.path, exc.errors()).to_dict()
        return JSONResponse({**body, "detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # the agent's error format for every answer (no such route, 401, 503 ...); "detail"
        # stays as FastAPI puts it
        detail = exc.detail
        if isinstance(detail, dict) and "error" in detail:
            body = {k: detail.get(k, "") for k in ("error", "what", "why", "next")}
        else:
            body = {"error": "HttpError",
                    "what": f"{request.method} {request.url.path}: {detail}",
                    "why": f"HTTP {exc.status_code}", "next": "see the agent's API (GET /docs)"}
        return JSONResponse({**body, "detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    # async where the answer is a small file read: cheaper than a hop to the thread pool
    @app.get("/v1/health")
    async def health(request: Request) -> dict:
        return health_doc(node_of(request))

    @app.get("/v1/version", dependencies=auth)
    async def get_version(request: Request) -> dict:
        return version_doc(node_of(request))

    @app.get("/v1/boot-id", dependencies=auth)
    async def boot_id(request: Request) -> dict:
        return boot_doc(node_of(request), pid, kernel_boot_id)

    @app.get("/v1/vms", dependencies=auth)
    def list_vms(request: Request) -> list[dict]:
        return [vm.to_dict() for vm in node_of(request).driver().list()]

    @app.get(INVENTORY_ROUTE, dependencies=auth)
    def inventory(request: Request) -> dict:
        """/v1/version and /v1/vms in one answer: what the upgrade records and proves."""
        node = node_of(request)
        if not answers_inventory(node.agent_version):  # as an agent of its release answers
            raise HTTPException(404, detail="Not Found")
        return {"version": version_doc(node),
                "vms": [vm.to_dict() for vm in node.driver().list()]}

    @app.post("/v1/vms", dependencies=auth)
    def create_vm(request: Request, req: VmCreate) -> dict:
        hv = node_of(request).driver()
        return hv.create(req.uuid, req.name, ha=req.ha, start=req.start).to_dict()

    @app.get("/v1/vms/{uuid}", dependencies=auth)
    def get_vm(request: Request, uuid: UuidInPath) -> dict:
        return node_of(request).driver().get(uuid).to_dict()

    @app.post("/v1/vms/{uuid}/{action}", dependencies=auth)
    def vm_action(request: Request, uuid: UuidInPath, action: str) -> dict:
        hv = node_of(request).driver()
        ops = {"start": hv.start, "stop": hv.stop, "reboot": hv.reboot}
        if action not in ops:
            raise HTTPException(404, detail=f"unknown VM action {action}")
        return ops[action](uuid).to_dict()

    @app.delete("/v1/vms/{uuid}", dependencies=auth)
    def destroy_vm(request: Request, uuid: UuidInPath) -> dict:
        node_of(request).driver().destroy(uuid)
        return {"uuid": uuid, "destroyed": True}

    @app.get("/v1/volumes", dependencies=auth)
    def list_volumes(request: Request) -> list[dict]:
        return vols.list_volumes(node_of(request).node_root)

    @app.post("/v1/volumes", dependencies=auth)
    def volume(request: Request, req: VolumeRequest) -> dict:
        node = node_of(request)
        root = node.node_root
        if req.action == "create":
            return vols.create(root, req.uuid, req.size, req.format, req.shared)
        if req.action == "attach":
            if req.vm_uuid is None:
                raise UsageError(f"attach of volume {req.uuid} names no vm_uuid",
                                 why="a volume attaches to one VM of this node",
                                 next="send the uuid of the VM in vm_uuid")
            return vols.attach(root, req.uuid, req.vm_uuid,
                               lambda vm_uuid: _vm_exists(node.driver(), vm_uuid))
        if req.action == "detach":
            return vols.detach(root, req.uuid)
        if req.action == "delete":
            vols.delete(root, req.uuid)
            return {"uuid": req.uuid, "deleted": True}
        raise HTTPException(422, detail=f"unknown volume action {req.action}")

    @app.get("/v1/packages", dependencies=auth)
    async def list_packages(request: Request) -> dict:
        return pkgs.read_packages(node_of(request).node_root)

    @app.post("/v1/packages", dependencies=auth)
    def install_package(request: Request, req: PackageInstall) -> dict:
        previous = pkgs.install(node_of(request).node_root, req.name, req.version)
        return {"name": req.name, "version": req.version, "previous": previous}

    @app.post(UPGRADE_ROUTE, dependencies=auth, status_code=202)
    def upgrade_itself(request: Request, req: SelfUpgrade) -> JSONResponse:
        """Install skylift-agent req.version; hand the socket over to it and answer with its
        version document (200), or answer and then restart onto it (202)."""
        return take_upgrade_order(node_of(request), req, request.url.scheme)

    return app


def take_upgrade_order(node: ServedNode, req: SelfUpgrade, scheme: str) -> JSONResponse:
    """The answer to an upgrade order (skylift.agent.self_upgrade), the new agent installed:
    200 with the new agent's document once it serves on this one's socket, or 202 and a
    restart once answered."""
    done = self_upgrade.upgrade_self(node, req.version, req.sha256, scheme)
    successor = node.hand_over()
    # "close": this agent ends after answering; a client that kept the connection would
    # send its next request into it, only to be hung up on
    if successor is not None:
        return JSONResponse({**done, "restarting": False, "successor": successor},
                            headers={"Connection": "close"},
                            background=BackgroundTask(node.exit_after_answer))
    return JSONResponse(done, status_code=202, headers={"Connection": "close"},
                        background=BackgroundTask(node.restart_soon))


def error_status(exc: SkyliftError) -> int:
    """The HTTP status of a skylift error: 404 no such VM, 422 bad input, 409 refused, 500."""
    if isinstance(exc, NoSuchVm):
        return 404
    if isinstance(exc, UsageError):
        return 422
    return 409 if isinstance(exc, Refused) else 500


def validation_error(method: str, path: str, errors: list[dict]) -> UsageError:
    """The request FastAPI could not validate, as a person reads it (the first error)."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ())]
    where, field = (loc[0], ".".join(loc[1:]) or loc[0]) if loc else ("request", "request")
    pattern = (first.get("ctx") or {}).get("pattern")
    if pattern in RULES:
        why, next_ = RULES[pattern]
    else:
        why = first.get("msg", "it does not match the API")
        next_ = "see the agent's API (GET /docs)"
    if first.get("type") == "missing":
        what = f"{method} {path}: {field} is missing from the {where}"
    elif first.get("type") == "json_invalid":
        what = f"{method} {path}: the body is not JSON"
    else:
        shown = repr(first.get("input"))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        what = f"{method} {path}: invalid {field} {shown} in the {where}"
    return UsageError(what, why=why, next=next_)


def _vm_exists(hv: HypervisorDriver, vm_uuid: str) -> bool:
    try:
        hv.get(vm_uuid)
        return True
    except NoSuchVm:
        return False
