"""The agent's code packages: the product code with its release stamp, and the distributions
it runs on — proven by running an agent from them alone with Debian's python3."""

from __future__ import annotations

import io
import json
import subprocess
import urllib.request
import zipfile
from pathlib import Path

import pytest

from skylift.agent.hypervisor import kill_node_vms
from skylift.agent.code_install import install_code, launcher
from skylift.agent.launch import free_port
from skylift.agent.node import init_node
from skylift.processes import terminate
from skylift.release.agent_code import (agent_deps_bytes, agent_dists, agent_package_bytes,
                                        code_digest_of_package)
from skylift.release.build import os_image_content

SYSTEM_PYTHON = Path("/usr/bin/python3")


def names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.namelist()


def test_the_agent_package_is_the_product_code_and_its_stamp():
    data = agent_package_bytes("4.3.12")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert json.loads(zf.read("skylift/agent_build.json")) == {"release": "4.3.12"}
        listed = zf.namelist()
    assert {"skylift/agent/server.py", "skylift/agent/code.py", "skylift/cli/agent.py"} <= set(listed)
    assert not [n for n in listed if n.startswith("skylift/lab/") or n.endswith(".pyc")]
    assert agent_package_bytes("4.3.12") == data  # deterministic (and cached)
    # the stamp is part of what runs (the version the agent reports): two releases differ
    assert code_digest_of_package(agent_package_bytes("3.7.1")) != code_digest_of_package(data)


def test_the_deps_hold_what_the_agent_imports_and_no_build_or_test_tools():
    dists = {d.metadata["Name"].lower().replace("_", "-") for d in agent_dists()}
    assert {"fastapi", "uvicorn", "starlette", "pydantic", "pydantic-core", "cryptography",
            "typer", "rich", "httpx", "h11", "anyio"} <= dists
    assert not dists & {"skylift", "pip", "setuptools", "pytest", "hypothesis"}
    listed = names(agent_deps_bytes())
    assert "fastapi/__init__.py" in listed and "uvicorn/main.py" in listed
    assert not [n for n in listed if "__pycache__" in n or n.startswith(("skylift/", "../"))]


def test_the_os_image_index_names_the_agent_code_digest():
    _, files = os_image_content("4.3.12", "c74")
    index = json.loads(dict(files)["repodata/index.json"])
    agent = next(p for p in index["packages"] if p["name"] == "skylift-agent")
    data = dict(files)[f"packages/{agent['file']}"]
    assert agent["code_digest"] == code_digest_of_package(data)
    assert "code_digest" not in next(p for p in index["packages"] if p["name"] == "libvirt")


def install_node(tmp: Path, release: str) -> Path:
    """A node root with both code packages installed from their files."""
    root = tmp / "node"
    for name, data in (("python3-agent-deps", agent_deps_bytes()),
                       ("skylift-agent", agent_package_bytes(release))):
        file = tmp / f"{name}-{release}.pkg"
        file.write_bytes(data)
        install_code(root, name, release, file, python=str(SYSTEM_PYTHON))
    return root


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs Debian's python3")
def test_an_agent_runs_from_the_packages_alone_with_the_system_python(tmp_path):
    root = install_node(tmp_path, "4.3.12")
    init_node(root, "host", "c74")
    port = free_port("127.0.0.1")
    agent = subprocess.Popen([str(launcher(root)), "-m", "skylift.agent", "serve", "--role",
                              "host", "--node-root", str(root), "--port", str(port),
                              "--host", "127.0.0.1", "--driver", "sim"],
                             cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        doc = None
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/version",
                                            timeout=1) as resp:
                    doc = json.loads(resp.read())
                break
            except OSError:
                assert agent.poll() is None, agent.stdout.read().decode()[-2000:]
                subprocess.run(["sleep", "0.1"])
        assert doc is not None
        assert doc["code"]["source"] == "package"
        assert doc["agent_version"] == doc["code"]["version"] == "4.3.12"
        assert doc["code"]["digest"] == code_digest_of_package(agent_package_bytes("4.3.12"))
        assert "path" not in doc["code"]
    finally:
        terminate(agent.pid, timeout=5)
        agent.wait(5)
        kill_node_vms(root)
