"""Fixtures for agent tests: node roots with a package database, and agents that are always
stopped afterwards together with every VM process and sim daemon they left (no orphans)."""

from __future__ import annotations

import functools
import http.server
import json
import ssl
import threading

import pytest

from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.node import init_node
from skylift.agent.launch import start_agent, stop_agent
from skylift.pki.authority import CloudCa
from skylift.release.build import os_image_content

OLD_PACKAGES = {"skylift-agent": "4.0.0", "qemu-kvm": "2.12.0", "libvirt": "4.9.0"}


@pytest.fixture
def make_node(tmp_path):
    """Factory: a fresh node root (node.json + packages.json); its VMs are killed at teardown."""
    roots = []

    def _make(name: str = "host1", role: str = "host", os_release: str = "c74",
              packages: dict | None = None):
        root = tmp_path / name
        init_node(root, role, os_release, dict(packages or OLD_PACKAGES))
        roots.append(root)
        return root

    yield _make
    for root in roots:
        kill_node_vms(root)


@pytest.fixture
def agents():
    """Start agents through this list-like helper; all are stopped at teardown."""
    started = []

    class Agents:
        def start(self, node_root, role="host", driver="sim", **kw):
            handle = start_agent(node_root, role, driver=driver, **kw)
            started.append(handle)
            return handle

        def track(self, handle):
            started.append(handle)
            return handle

    yield Agents()
    for handle in started:
        stop_agent(handle, timeout=3.0)


@pytest.fixture
def repo(tmp_path):
    """An HTTPS server of the 4.3.12 c74 repository (files in tmp_path/repo/c74, served as they
    are now); yields (url, CA PEM, index)."""
    top = tmp_path / "repo"
    _, files = os_image_content("4.3.12", "c74")
    for name, data in files:
        (top / "c74" / name).parent.mkdir(parents=True, exist_ok=True)
        (top / "c74" / name).write_bytes(data)
    ca = CloudCa.ensure(tmp_path / "pki")
    creds = ca.issue_mn_server(["127.0.0.1"])
    (tmp_path / "srv.pem").write_bytes(creds.cert_pem)
    (tmp_path / "srv.key").write_bytes(creds.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "srv.pem", tmp_path / "srv.key")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(top))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    index = json.loads(dict(files)["repodata/index.json"])
    yield f"https://127.0.0.1:{server.server_address[1]}", creds.ca_pem.decode(), index
    server.shutdown()
    server.server_close()

