"""`skylift repo update / rollback / status`: atomic, refused cleanly, and the c72 redirect."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from release_fixtures import flip_bit, run_cli, tree_digest

from skylift.errors import Refused
from skylift.release.manifest import RepoIndex
from skylift.release.verify import VerificationFailed
from skylift.repo.local import LocalRepo
from skylift.repo.update import check_repo_matches, update_from_image

C74_NEW = "skylift-os-4.3.12-c74.tar"
C76_NEW = "skylift-os-4.3.12-c76.tar"
C74_OLD = "skylift-os-3.7.1-c74.tar"
PAUSING_UPDATE = Path(__file__).with_name("pausing_update.py")


def assert_repo_whole(node: Path, os_release: str) -> str:
    """The current repo's files all match its index; returns its repo version."""
    current = LocalRepo(node).current_dir(os_release)
    index = RepoIndex.model_validate_json((current / "repodata/index.json").read_text())
    for pkg in index.packages:
        data = (current / "packages" / pkg.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == pkg.sha256, pkg.file
    return index.repo_version


def test_update_status_rollback(built, trust, tmp_path):
    node = tmp_path / "node"
    first = run_cli("repo", "update", "--image", built["3.7.1"] / C74_OLD, "--node-root", node)
    assert first.returncode == 0, first.stderr
    second = run_cli("repo", "update", "--image", built["4.3.12"] / C74_NEW, "--node-root", node,
                     "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["previous_version"] == "3.7.1"
    status = run_cli("repo", "status", "--node-root", node, "--json")
    (repo,) = json.loads(status.stdout)["repos"]
    assert (repo["os"], repo["repo_version"], repo["previous"]) == ("c74", "4.3.12", "3.7.1")
    assert assert_repo_whole(node, "c74") == "4.3.12"
    back = run_cli("repo", "rollback", "--node-root", node)
    assert back.returncode == 0 and "3.7.1" in back.stdout
    assert assert_repo_whole(node, "c74") == "3.7.1"
    # The same image again is a no-op: nothing is rewritten.
    before = tree_digest(node / "repo/c74")
    update_from_image(built["3.7.1"] / C74_OLD, node)
    assert tree_digest(node / "repo/c74") == before


def _damaged_copies(built, tmp_path, signing):
    """(image path, words the refusal must contain) for each kind of damage."""
    src = built["4.3.12"]
    cases = []
    for i, frac in enumerate((0.0, 0.3, 0.77, 0.9999)):
        d = tmp_path / f"flip{i}"
        shutil.copytree(src, d)
        flip_bit(d / C74_NEW, int(frac * (d / C74_NEW).stat().st_size), i)
        cases.append((d / C74_NEW, "digest mismatch"))
    d = tmp_path / "trunc"
    shutil.copytree(src, d)
    os.truncate(d / C74_NEW, 4096)
    cases.append((d / C74_NEW, "truncated"))
    d = tmp_path / "unsigned"
    shutil.copytree(src, d)
    (d / f"{C74_NEW}.sig").unlink()
    cases.append((d / C74_NEW, "unsigned"))
    d = tmp_path / "forged"
    shutil.copytree(src, d)
    sig = json.loads((d / f"{C74_NEW}.sig").read_text())
    sig["key_id"] = "0" * 16
    (d / f"{C74_NEW}.sig").write_text(json.dumps(sig))
    cases.append((d / C74_NEW, "unknown key"))
    cases.append((src / "skylift-installer-4.3.12.tar", "not an OS image"))
    cases.append((src / C76_NEW, "needs the c74 one"))
    cases.append((tmp_path / "nowhere" / C74_NEW, "missing"))
    return cases


def test_every_refusal_leaves_the_repo_byte_for_byte_unchanged(built, trust, signing, tmp_path):
    node = tmp_path / "node"
    update_from_image(built["3.7.1"] / C74_OLD, node)
    before = tree_digest(node)
    cases = _damaged_copies(built, tmp_path, signing)
    for image, words in cases[:1] + cases[4:]:  # the CLI: exit 2, the file named
        res = run_cli("repo", "update", "--image", image, "--node-root", node)
        assert res.returncode == 2, (image, res.stdout, res.stderr)
        assert image.name in res.stderr and words in res.stderr, res.stderr
        assert tree_digest(node) == before
    for image, words in cases[1:4]:  # the other bit flips, through the Python API
        with pytest.raises(VerificationFailed, match=words):
            update_from_image(image, node)
        assert tree_digest(node) == before
    assert assert_repo_whole(node, "c74") == "3.7.1"


def test_the_update_names_each_stage_it_passes(built, trust, tmp_path):
    node = tmp_path / "node"
    update_from_image(built["3.7.1"] / C74_OLD, node)
    stages: list[str] = []
    update_from_image(built["4.3.12"] / C74_NEW, node, on_stage=stages.append)
    files = len(RepoIndex.model_validate_json(
        (LocalRepo(node).current_dir("c74") / "repodata/index.json").read_text()).packages)
    assert stages[0] == "verified" and stages[-3:] == ["staged", "stored", "switched"]
    assert stages[1:-3] == ["file-staged"] * len(stages[1:-3])
    assert len(stages[1:-3]) >= files + 1  # every package, the index, the manifest
    again: list[str] = []
    update_from_image(built["4.3.12"] / C74_NEW, node, on_stage=again.append)
    assert again == ["verified"]  # nothing to stage or switch


def _wait_for(pred, proc, timeout=30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return False


def _staged_files(base: Path) -> int:
    return sum(1 for s in base.glob(".staging-*") for p in s.rglob("*") if p.is_file())


def _kill_points(base: Path, node: Path):
    """Moments to kill at, each a predicate over what the update has written so far."""
    return {
        "while-verifying": lambda: True,
        "first-file-staged": lambda: _staged_files(base) >= 1,
        "half-staged": lambda: _staged_files(base) >= 5,
        "in-store-not-switched": lambda: len(list((base / "store").glob("4.3.12-*"))) == 1,
        "switched": lambda: LocalRepo(node).info("c74").repo_version == "4.3.12",
    }


@pytest.mark.parametrize("point", ["while-verifying", "first-file-staged", "half-staged",
                                   "in-store-not-switched", "switched", "random"])
def test_kill_9_leaves_the_old_repo_whole_and_a_rerun_completes(point, built, trust, tmp_path):
    node = tmp_path / "node"
    update_from_image(built["3.7.1"] / C74_OLD, node)
    old_dir = LocalRepo(node).current_dir("c74")
    old_digest = tree_digest(old_dir)
    base = node / "repo/c74"
    delay = "0" if point == "random" else "0.1"
    proc = subprocess.Popen([sys.executable, str(PAUSING_UPDATE), str(built["4.3.12"] / C74_NEW),
                             str(node), delay], stderr=subprocess.PIPE, text=True)
    try:
        if point == "random":
            time.sleep(random.uniform(0.2, 1.5))
        else:
            assert _wait_for(_kill_points(base, node)[point], proc), proc.stderr.read()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    version = assert_repo_whole(node, "c74")
    assert version in ("3.7.1", "4.3.12")
    if version == "3.7.1":
        assert LocalRepo(node).current_dir("c74") == old_dir and tree_digest(old_dir) == old_digest
    result = update_from_image(built["4.3.12"] / C74_NEW, node)
    info = result.repo
    assert (info.repo_version, info.previous) == ("4.3.12", "3.7.1")
    assert assert_repo_whole(node, "c74") == "4.3.12"
    assert not list(base.glob(".staging-*"))  # leftovers of the killed run are gone
    assert tree_digest(old_dir) == old_digest  # the rollback target is intact
    LocalRepo(node).rollback("c74")
    assert assert_repo_whole(node, "c74") == "3.7.1"


def test_c72_node_is_redirected_to_the_c74_repo(built, trust, tmp_path):
    node = tmp_path / "node"
    node.mkdir()
    (node / "node.json").write_text('{"os": "c72"}')
    # A 3.2.0 c72 node has its own c72 repo.
    update_from_image(built["3.2.0"] / "skylift-os-3.2.0-c72.tar", node)
    assert LocalRepo(node).info("c72").repo_version == "3.2.0"
    before = tree_digest(node)
    wrong = run_cli("repo", "update", "--image", built["4.3.12"] / C76_NEW, "--node-root", node)
    assert wrong.returncode == 2
    assert "needs the c74 one" in wrong.stderr and "skylift-os-4.3.12-c74.tar" in wrong.stderr
    assert tree_digest(node) == before
    ok = run_cli("repo", "update", "--image", built["4.3.12"] / C74_NEW, "--node-root", node)
    assert ok.returncode == 0, ok.stderr
    assert "c72 is retired" in ok.stdout
    assert os.readlink(node / "repo/c72") == "c74"
    info = LocalRepo(node).info("c72")
    assert (info.serves, info.repo_version) == ("c74", "4.3.12")
    assert list((node / "repo").glob(".retired-c72-*"))  # the old c72 repo is kept aside


def test_installer_checks_the_local_repo_version(built, trust, tmp_path):
    import tarfile

    with tarfile.open(built["4.3.12"] / "skylift-installer-4.3.12.tar") as tar:
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())
    node = tmp_path / "node"
    update_from_image(built["3.7.1"] / C74_OLD, node)
    with pytest.raises(Refused, match="refresh the local repo from the OS image first"):
        check_repo_matches(manifest, node)
    update_from_image(built["4.3.12"] / C74_NEW, node)
    assert check_repo_matches(manifest, node).repo_version == "4.3.12"
