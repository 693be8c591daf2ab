"""The host side: download a package from a node's repository, resuming after a cut.

The download goes to `<dest>.part`; after a broken connection the client asks for the rest
with `Range: bytes=<have>-` and `If-Range: <etag>`, so a file that changed meanwhile is
restarted from zero instead of spliced. The finished file must match the index's SHA-256
before it is renamed into place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from skylift.errors import ArtefactError, OperationFailed
from skylift.files import replace, sha256, sync
from skylift.release.manifest import PackageEntry, RepoIndex


@dataclass(frozen=True)
class FetchResult:
    """A fetched package, and how many connections it took."""

    path: Path
    package: PackageEntry
    attempts: int
    resumed_bytes: int  # bytes that were not downloaded again thanks to Range


def fetch_index(base_url: str, client: httpx.Client) -> RepoIndex:
    """The repository index at base_url (e.g. http://mn:8080/repo/c76)."""
    resp = client.get(f"{base_url.rstrip('/')}/repodata/index.json")
    resp.raise_for_status()
    return RepoIndex.model_validate_json(resp.content)


def fetch_package(base_url: str, name: str, dest: Path | str, *, version: str | None = None,
                  attempts: int = 8, timeout: float = 10.0) -> FetchResult:
    """Download a package (by file name, or by name, newest unless `version`) into dest.

    dest is a folder (the package's file name is kept) or a file path. Resumes with Range after
    a cut connection, up to `attempts` connections; checks SHA-256 against the index.
    """
    with httpx.Client(timeout=timeout) as client:
        index = fetch_index(base_url, client)
        pkg = index.find(name, version)
        if pkg is None:
            raise ArtefactError(f"no package {name} in the repository at {base_url}",
                                next="check the name against repodata/index.json")
        dest = Path(dest)
        target = dest / pkg.file if dest.is_dir() else dest
        part = target.with_name(target.name + ".part")
        url = f"{base_url.rstrip('/')}/packages/{pkg.file}"
        etag = f'"{pkg.sha256}"'
        resumed, tries = 0, 0
        while True:
            tries += 1
            have = part.stat().st_size if part.exists() else 0
            if have >= pkg.size:
                break
            headers = {"Range": f"bytes={have}-", "If-Range": etag} if have else {}
            try:
                with client.stream("GET", url, headers=headers) as resp:
                    if resp.status_code == 206:
                        resumed += have
                        mode = "ab"
                    elif resp.status_code == 200:
                        mode = "wb"  # server sent it all: start over
                    else:
                        resp.raise_for_status()
                        raise OperationFailed(f"unexpected HTTP {resp.status_code} for {url}")
                    with open(part, mode) as out:
                        for chunk in resp.iter_bytes():  # as received: a cut keeps what came
                            out.write(chunk)
                break
            except (httpx.TransportError, httpx.RemoteProtocolError) as exc:
                if tries >= attempts:
                    raise OperationFailed(
                        f"could not fetch {pkg.file} from {base_url} after {tries} connections",
                        why=str(exc) or type(exc).__name__,
                        next="check the repository server and run again (it resumes)") from None
                time.sleep(min(0.05 * tries, 1.0))
        if sha256(part) != pkg.sha256:
            part.unlink(missing_ok=True)
            raise ArtefactError(f"{pkg.file} from {base_url} does not match the index's SHA-256",
                                next="fetch it again")
        with open(part, "rb+") as fh:
            sync(fh)
        replace(part, target)
        return FetchResult(target, pkg, tries, resumed)
