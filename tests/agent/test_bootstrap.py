"""Bootstrapping a node with python3 alone from a repository served over HTTPS."""

from __future__ import annotations

import functools
import http.server
import json
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from skylift.agent import packages as pkgs
from skylift.agent.bootstrap import bootstrap_argv, bootstrap_input
from skylift.agent.code_install import agent_dir, current_version, launcher
from skylift.pki.authority import CloudCa
from skylift.release.build import os_image_content

PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"


@pytest.fixture
def repo(tmp_path):
    """An HTTPS server of the 4.3.12 c74 repository; yields (url, CA PEM, index)."""
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


def test_a_bare_node_bootstraps_from_the_repository_over_https(tmp_path, repo):
    url, ca_pem, index = repo
    root = tmp_path / "node"
    done = subprocess.run(bootstrap_argv(str(root), url, "c74", python=PYTHON),
                          input=bootstrap_input(ca_pem), capture_output=True, text=True,
                          timeout=300, cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    agent = next(p for p in index["packages"] if p["name"] == "skylift-agent")
    assert answer == {"agent_version": "4.3.12", "code_digest": agent["code_digest"]}
    assert current_version(root) == "4.3.12"
    assert (agent_dir(root) / "deps-current").is_symlink()
    assert pkgs.read_packages(root) == {"python3-agent-deps": "4.3.12", "skylift-agent": "4.3.12"}
    assert json.loads((root / "repo.json").read_text())["url"] == url
    # the installed code runs, and a later install downloads from the recorded repository
    code = subprocess.run([str(launcher(root)), "-c", "import json; from skylift.agent.code "
                           "import running_code; print(json.dumps(running_code()))"],
                          capture_output=True, text=True, cwd="/", check=True)
    assert json.loads(code.stdout)["digest"] == agent["code_digest"]
    again = subprocess.run([str(launcher(root)), "-m", "skylift.agent.packages", "--node-root",
                            str(root), "install", "skylift-agent", "4.3.12"],
                           capture_output=True, text=True, cwd="/")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["code"]["changed"] is False


def test_a_wrong_ca_is_one_clear_line_and_a_failure(tmp_path, repo):
    url, _, _ = repo
    other = CloudCa.ensure(tmp_path / "other").ca_pem.decode()
    done = subprocess.run(bootstrap_argv(str(tmp_path / "node"), url, "c74", python=PYTHON),
                          input=bootstrap_input(other), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "CERTIFICATE_VERIFY_FAILED" in done.stderr
