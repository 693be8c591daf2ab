"""The local repo over HTTP: a real uvicorn server (`skylift repo serve`), a real TCP proxy
that cuts connections, and a host fetching a package that resumes with Range."""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import httpx
import pytest
from release_fixtures import start_cli

from skylift.repo.fetch import fetch_package
from skylift.repo.update import update_from_image

C76 = "skylift-os-4.3.12-c76.tar"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def node(built, signing, tmp_path_factory):
    root = tmp_path_factory.mktemp("served-node")
    update_from_image(built["4.3.12"] / C76, root, trusted_keys=[str(signing.public_path)])
    return root


@pytest.fixture(scope="module")
def server(node):
    """`skylift repo serve` in its own process; yields its base URL."""
    port = _free_port()
    proc = start_cli("repo", "serve", "--port", str(port), "--node-root", str(node))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"repo server did not start: {proc.stderr.read()}")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


class CuttingProxy:
    """A TCP proxy that drops the first connections after `cuts[i]` response bytes."""

    def __init__(self, upstream_port: int, cuts: list[int]) -> None:
        self.upstream, self.cuts, self.connections = upstream_port, list(cuts), 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            limit = self.cuts[self.connections] if self.connections < len(self.cuts) else None
            self.connections += 1
            up = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, up, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, limit), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: limit - sent])
                    break  # the cut: both ends closed mid-response
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.sock.close()


def test_etag_304_and_ranges(server):
    base = f"{server}/c76"
    index = httpx.get(f"{base}/repodata/index.json").json()
    qemu = next(p for p in index["packages"] if p["name"] == "qemu" and p["version"] == "4.2.0")
    url = f"{base}/packages/{qemu['file']}"
    full = httpx.get(url)
    assert full.status_code == 200 and full.headers["etag"] == f'"{qemu["sha256"]}"'
    assert hashlib.sha256(full.content).hexdigest() == qemu["sha256"]
    assert httpx.get(url, headers={"If-None-Match": full.headers["etag"]}).status_code == 304
    part = httpx.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == full.content[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{qemu['size']}"
    tail = httpx.get(url, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == full.content[-100:]
    assert httpx.get(url, headers={"Range": f"bytes={qemu['size']}-"}).status_code == 416
    stale = httpx.get(url, headers={"Range": "bytes=10-", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == full.content
    assert httpx.get(f"{base}/packages/../../../../etc/passwd").status_code == 404
    assert httpx.get(f"{server}/c74/repodata/index.json").status_code == 404


def test_fetch_resumes_with_range_after_cut_connections(server, tmp_path):
    port = int(server.rsplit(":", 1)[1])
    # The client keeps its connection alive: connection 1 carries the index and the start of
    # the package; it and the next two are cut mid-package, the fourth completes it.
    proxy = CuttingProxy(port, cuts=[80_000, 40_000, 30_000])
    try:
        result = fetch_package(f"http://127.0.0.1:{proxy.port}/c76", "qemu", tmp_path,
                               version="4.2.0")
    finally:
        proxy.close()
    data = result.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == result.package.sha256
    assert len(data) == result.package.size
    assert result.attempts == 4 and result.resumed_bytes > 0
    assert not list(tmp_path.glob("*.part"))


def test_served_repo_follows_updates_and_the_c72_redirect(built, signing, tmp_path):
    from fastapi.testclient import TestClient

    from skylift.repo.routes import create_app

    keys = [str(signing.public_path)]
    root = tmp_path / "node"
    update_from_image(built["3.7.1"] / "skylift-os-3.7.1-c74.tar", root, os_release="c72",
                      trusted_keys=keys)
    client = TestClient(create_app(root))
    old = client.get("/c72/repodata/index.json")  # a c72 host asks for its repo: c74 answers
    assert old.status_code == 200 and old.json()["os"] == "c74"
    assert old.json()["repo_version"] == "3.7.1"
    update_from_image(built["4.3.12"] / "skylift-os-4.3.12-c74.tar", root, trusted_keys=keys)
    new = client.get("/c72/repodata/index.json", headers={"If-None-Match": old.headers["etag"]})
    assert new.status_code == 200 and new.json()["repo_version"] == "4.3.12"
    assert new.headers["etag"] != old.headers["etag"]
