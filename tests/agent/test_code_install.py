"""Installing the agent's code into versioned folders on a node (skylift.agent.code_install)
and through the node's package command (skylift.agent.packages)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from skylift.agent import packages as pkgs
from skylift.agent.code_install import (agent_dir, current_version, install_code, launcher,
                                        previous_version, switch_back)
from skylift.errors import ArtefactError, PackageDigestMismatch, Refused
from skylift.files import sha256
from skylift.release.agent_code import agent_package_bytes, code_digest_of_package


def package(tmp_path: Path, release: str) -> Path:
    file = tmp_path / f"skylift-agent-{release}.c74.pkg"
    file.write_bytes(agent_package_bytes(release))
    return file


def zip_of(entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def test_versions_are_installed_side_by_side_and_current_switches(tmp_path):
    root = tmp_path / "node"
    first = install_code(root, "skylift-agent", "4.0.0", package(tmp_path, "4.0.0"))
    assert first["changed"] and first["previous"] is None
    assert current_version(root) == "4.0.0" and previous_version(root) is None
    second = install_code(root, "skylift-agent", "4.3.12", package(tmp_path, "4.3.12"))
    assert second["previous"] == "4.0.0"
    assert (current_version(root), previous_version(root)) == ("4.3.12", "4.0.0")
    assert os.readlink(agent_dir(root) / "current") == "versions/4.3.12"  # relative: movable
    assert json.loads((agent_dir(root) / "current/skylift/agent_build.json").read_text()) == {
        "release": "4.3.12"}
    assert (agent_dir(root) / "versions/4.0.0/skylift/agent/app.py").is_file()
    assert os.access(launcher(root), os.X_OK)
    assert switch_back(root) == "4.0.0"
    assert (current_version(root), previous_version(root)) == ("4.0.0", "4.3.12")


def test_reinstalling_the_same_file_changes_nothing(tmp_path):
    root, file = tmp_path / "node", package(tmp_path, "4.3.12")
    install_code(root, "skylift-agent", "4.3.12", file)
    app = agent_dir(root) / "versions/4.3.12/skylift/agent/app.py"
    before = (app.stat().st_ino, (agent_dir(root) / "run").stat().st_mtime_ns)
    again = install_code(root, "skylift-agent", "4.3.12", file, sha256(file))
    assert not again["changed"] and again["previous"] == "4.3.12"
    assert (app.stat().st_ino, (agent_dir(root) / "run").stat().st_mtime_ns) == before
    assert previous_version(root) is None  # the same version is not its own previous


def test_a_file_whose_digest_differs_is_refused_before_anything_changes(tmp_path):
    root, file = tmp_path / "node", package(tmp_path, "4.3.12")
    with pytest.raises(PackageDigestMismatch):
        install_code(root, "skylift-agent", "4.3.12", file, "0" * 64)
    assert not agent_dir(root).exists()


@pytest.mark.parametrize("name", ["/etc/evil", "skylift/../../evil", "..\\evil"])
def test_unsafe_members_are_refused(tmp_path, name):
    root, file = tmp_path / "node", tmp_path / "bad.pkg"
    file.write_bytes(zip_of([("skylift/__init__.py", b""), (name, b"x")]))
    with pytest.raises(ArtefactError, match="unsafe member"):
        install_code(root, "skylift-agent", "4.3.12", file)
    assert current_version(root) is None
    assert not (tmp_path / "evil").exists()


def test_a_symlink_member_is_refused(tmp_path):
    info = zipfile.ZipInfo("skylift/link")
    info.external_attr = 0o120777 << 16
    file = tmp_path / "bad.pkg"
    file.write_bytes(zip_of([(info, b"/etc/passwd")]))
    with pytest.raises(ArtefactError, match="symbolic link"):
        install_code(tmp_path / "node", "skylift-agent", "4.3.12", file)


def test_switching_back_without_a_previous_version_is_refused(tmp_path):
    root = tmp_path / "node"
    install_code(root, "skylift-agent", "4.3.12", package(tmp_path, "4.3.12"))
    with pytest.raises(Refused):
        switch_back(root)


def test_the_installed_code_reports_the_digest_of_its_package(tmp_path):
    """running_code() of the unpacked package agrees with the build side's code digest."""
    root = tmp_path / "node"
    install_code(root, "skylift-agent", "4.3.12", package(tmp_path, "4.3.12"))
    env = {"PYTHONPATH": str(agent_dir(root) / "current"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", "import json; from skylift.agent.code import "
                           "running_code; print(json.dumps(running_code()))"],
                          env=env, capture_output=True, text=True, cwd="/", check=True)
    code = json.loads(done.stdout)
    assert code["source"] == "package" and code["version"] == "4.3.12"
    assert code["path"] == str((agent_dir(root) / "versions/4.3.12/skylift").resolve())
    assert code["digest"] == code_digest_of_package(agent_package_bytes("4.3.12"))


def test_the_package_command_unpacks_a_code_package_and_records_it(tmp_path):
    root, file = tmp_path / "node", package(tmp_path, "4.3.12")
    done = subprocess.run([sys.executable, "-m", "skylift.agent.packages", "--node-root",
                           str(root), "install", "skylift-agent", "4.3.12", "--file", str(file),
                           "--sha256", sha256(file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["code"]["code_digest"] == code_digest_of_package(file)
    assert pkgs.read_packages(root) == {"skylift-agent": "4.3.12"}
    bad = subprocess.run([sys.executable, "-m", "skylift.agent.packages", "--node-root",
                          str(root), "install", "skylift-agent", "4.3.12", "--file", str(file),
                          "--sha256", "1" * 64], capture_output=True, text=True)
    assert bad.returncode == 2 and "SHA-256" in bad.stderr


def test_without_a_file_or_repository_a_package_is_only_recorded(tmp_path):
    root = tmp_path / "node"
    answer = pkgs.install_package(root, "skylift-agent", "4.3.12")
    assert answer == {"name": "skylift-agent", "version": "4.3.12", "previous": None}
    assert not agent_dir(root).exists()
