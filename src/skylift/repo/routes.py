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

Whatever a client sends is answered with a 4xx, never a 500: a NUL in the path is a 400, an
OS release that is not a plain name, a path segment longer than a file name can be (255
bytes) or a path longer than 1024 characters is a 404, and a range whose numbers have more
digits than any file's size (18) is past the end of the file (416, or clamped for an end). The
listing (`/` of `skylift repo serve`) names the repositories, never a folder or the process.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from skylift.files import sha256
from skylift.release.manifest import RepoIndex
from skylift.repo.local import LocalRepo

CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_DIGITS = 18  # more digits: past any file's end (and int() refuses 4,300 and more)
_OS_RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_PATH = 1024  # characters of a path in a repository
MAX_SEGMENT = 255  # bytes of one segment (a file name: NAME_MAX)


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
        start = _number(m.group(1))
        end = min(_number(m.group(2)), size - 1) if m.group(2) else size - 1
    else:  # suffix range: the last N bytes
        start, end = max(size - _number(m.group(2)), 0), size - 1
    if start >= size or start > end:
        return "416"
    return start, end


def _number(digits: str) -> int:
    """A range's number; one of more than MAX_DIGITS digits is past the end of any file."""
    return int(digits) if len(digits) <= MAX_DIGITS else 10 ** MAX_DIGITS


def _check_path(os_release: str, path: str) -> None:
    """HTTPException 400/404 for a path that cannot name a file of a repository."""
    if "\x00" in os_release or "\x00" in path:
        raise HTTPException(400, "a repository path must not contain NUL")
    if not _OS_RELEASE.match(os_release):
        raise HTTPException(404, "no repository for that OS release on this node")
    if len(path) > MAX_PATH or any(len(part.encode("utf-8", "surrogatepass")) > MAX_SEGMENT
                                   for part in path.split("/")):
        raise HTTPException(404, "no such file in the repository (the path is too long)")


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
        _check_path(os_release, path)
        try:
            current = repo.current_dir(os_release) \
                if (repo.repo_dir / os_release).exists() else None
            if current is None:
                raise HTTPException(404, f"no repository for {os_release} on this node")
            target = (current / path).resolve()
            if current.resolve() not in target.parents or not target.is_file():
                raise HTTPException(404, f"{path} is not in the {os_release} repository")
            size = target.stat().st_size
            etag = _etag_of(target, path, current)
        except (OSError, ValueError):  # a name the file system refuses names no file
            raise HTTPException(404, f"{path} is not in the {os_release} repository") from None
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
        """The repositories served: OS release, release and versions (no folder, no pid)."""
        return {"repos": [{k: v for k, v in i.to_dict().items() if k != "path"}
                          for i in LocalRepo(node_root).status()]}

    return app
