"""Serving a node's local repository over HTTP, for hosts to install packages from.

    GET /{os}/repodata/index.json     the repository index
    GET /{os}/packages/{file}         a package
    GET /{os}/{path}                  any other file of the current repo (REPO.json, ...)

Each request resolves the current repo afresh, so an update or a rollback is served at once.
Responses carry a strong ETag (the file's SHA-256, from the index for packages); If-None-Match
gives 304; a single `Range: bytes=...` gives 206 (a multi-range request gets the whole file,
which RFC 9110 allows); If-Range with a stale ETag gives the whole file, so a client resuming
across an update never splices two versions. The management node mounts router(); `skylift
repo serve` runs create_app() alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from skylift.files import sha256
from skylift.release.manifest import RepoIndex
from skylift.repo.local import LocalRepo

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _etag_of(path: Path, rel: str, current: Path) -> str:
    """Strong ETag: the SHA-256 from the index for packages, else of the file itself."""
    if rel.startswith("packages/"):
        try:
            index = RepoIndex.model_validate_json((current / "repodata/index.json").read_text())
            pkg = index.find(rel.removeprefix("packages/"))
            if pkg is not None:
                return f'"{pkg.sha256}"'
        except (OSError, ValueError):
            pass
    return f'"{sha256(path)}"'


def _parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, end inclusive) of a single range, None to send it all, "416" if unsatisfiable."""
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # multi-range or malformed: the whole file is a valid answer
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:  # suffix range: the last N bytes
        start, end = max(size - int(m.group(2)), 0), size - 1
    if start >= size or start > end:
        return "416"
    return start, end


def _stream(path: Path, start: int, length: int):
    with open(path, "rb") as fh:
        fh.seek(start)
        while length > 0:
            chunk = fh.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def router(node_root: Path | str | None = None) -> APIRouter:
    """The repository routes, to mount in the management node's app (e.g. under /repo)."""
    repo = LocalRepo(node_root)
    api = APIRouter()

    @api.get("/{os_release}/{path:path}")
    @api.head("/{os_release}/{path:path}")
    def get_file(os_release: str, path: str, request: Request) -> Response:
        current = repo.current_dir(os_release) if (repo.repo_dir / os_release).exists() else None
        if current is None:
            raise HTTPException(404, f"no repository for {os_release} on this node")
        target = (current / path).resolve()
        if current.resolve() not in target.parents or not target.is_file():
            raise HTTPException(404, f"{path} is not in the {os_release} repository")
        size = target.stat().st_size
        etag = _etag_of(target, path, current)
        headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "no-cache"}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        rng = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if rng and (if_range is None or if_range.strip() == etag):
            parsed = _parse_range(rng, size)
            if parsed == "416":
                return Response(status_code=416, headers=headers | {
                    "Content-Range": f"bytes */{size}"})
            if parsed is not None:
                start, end = parsed
                headers |= {"Content-Range": f"bytes {start}-{end}/{size}",
                            "Content-Length": str(end - start + 1)}
                body = _stream(target, start, end - start + 1) \
                    if request.method == "GET" else iter(())
                return StreamingResponse(body, status_code=206, headers=headers,
                                         media_type="application/octet-stream")
        headers["Content-Length"] = str(size)
        body = _stream(target, 0, size) if request.method == "GET" else iter(())
        return StreamingResponse(body, headers=headers, media_type="application/octet-stream")

    return api


def create_app(node_root: Path | str | None = None) -> FastAPI:
    """A standalone app serving the node's repository at the root path."""
    app = FastAPI(title="skylift local repository")
    app.include_router(router(node_root))

    @app.get("/", include_in_schema=False)
    def listing() -> dict:
        return {"repos": [i.to_dict() for i in LocalRepo(node_root).status()],
                "pid": os.getpid()}

    return app
