"""Bootstrapping a node with python3 alone from a repository served over HTTPS."""

from __future__ import annotations

import json
import subprocess

from skylift.agent import packages as pkgs
from skylift.agent.code_install import agent_dir, current_version, launcher
from skylift.pki.authority import CloudCa
from tests_support import bootstrap


def test_a_bare_node_bootstraps_from_the_repository_over_https(tmp_path, repo):
    url, ca_pem, index = repo
    root = tmp_path / "node"
    done = bootstrap(root, url, ca_pem)
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
    done = bootstrap(tmp_path / "node", url, other, timeout=120)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "CERTIFICATE_VERIFY_FAILED" in done.stderr
