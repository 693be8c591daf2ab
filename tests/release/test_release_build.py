"""`skylift release keygen` and `skylift release build`: what an operator receives."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tarfile
import zipfile

from release_fixtures import run_cli

from skylift.lineage import RELEASES, UPGRADED_HOST_QEMU
from skylift.release.build import build_release
from skylift.release.manifest import RepoIndex

NAMES_4312 = {"skylift-os-4.3.12-c74.tar", "skylift-os-4.3.12-c76.tar",
              "skylift-installer-4.3.12.tar", "skylift-upgrade-4.3.12.pyz",
              "skylift-ha-4.3.12.tar"}


def test_keygen_makes_a_private_key_only_its_owner_reads(tmp_path):
    res = run_cli("release", "keygen", "--out", tmp_path / "k", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert stat.S_IMODE((tmp_path / "k/skylift-release.key").stat().st_mode) == 0o600
    assert out["trusted_key"].startswith("ed25519:") and len(out["key_id"]) == 16
    again = run_cli("release", "keygen", "--out", tmp_path / "k")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_build_writes_every_artefact_with_sums_an_operator_can_check(tmp_path, signing):
    res = run_cli("release", "build", "--release", "4.3.12", "--out", tmp_path / "out",
                  "--key", signing.private_path, "--json")
    assert res.returncode == 0, res.stderr
    made = {f.name for f in (tmp_path / "out").iterdir()}
    for name in NAMES_4312:
        assert {name, f"{name}.md5", f"{name}.sha256", f"{name}.sig"} <= made
    # The sums are in the coreutils format operators already check with.
    for tool, suffix in (("md5sum", ".md5"), ("sha256sum", ".sha256")):
        sums = [f"{n}{suffix}" for n in sorted(NAMES_4312)]
        check = subprocess.run([tool, "-c", *sums], cwd=tmp_path / "out", capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(res.stdout)["key_id"] == signing.key_id


def test_build_refuses_a_key_readable_by_others(tmp_path, signing):
    key = tmp_path / "loose.key"
    key.write_bytes(signing.private_path.read_bytes())
    key.chmod(0o644)
    res = run_cli("release", "build", "--release", "4.3.12", "--out", tmp_path / "o",
                  "--key", key)
    assert res.returncode == 2 and "chmod 600" in res.stderr
    assert not (tmp_path / "o").exists()


def test_os_images_carry_the_lineage_packages(built):
    def index(version, os_release):
        path = built[version] / f"skylift-os-{version}-{os_release}.tar"
        with tarfile.open(path) as tar:
            idx = RepoIndex.model_validate_json(tar.extractfile("repodata/index.json").read())
            members = set(tar.getnames())
        for pkg in idx.packages:  # every package listed is in the image, with its digest
            assert f"packages/{pkg.file}" in members
        return idx

    new = index("4.3.12", "c76")
    qemus = {p.version: p.role for p in new.packages if p.name == "qemu"}
    assert qemus == {"4.2.0": "new-install", UPGRADED_HOST_QEMU: "upgraded-hosts"}
    assert {p.name for p in new.packages} >= {"qemu", "libvirt", "kernel", "skylift-agent"}
    old = index("3.7.1", "c74")
    assert {(p.name, p.version) for p in old.packages} >= {("qemu", "2.9.0"),
                                                          ("libvirt", "3.9.0")}
    assert old.repo_version == "3.7.1" and old.os == "c74"
    assert (built["3.2.0"] / "skylift-os-3.2.0-c72.tar").exists()  # before c72 was retired
    assert not (built["4.3.12"] / "skylift-os-4.3.12-c72.tar").exists()


def test_installer_manifest_and_wheel_install_with_pip(built, tmp_path):
    with tarfile.open(built["4.3.12"] / "skylift-installer-4.3.12.tar") as tar:
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())
        wheel = tmp_path / "skylift-4.3.12-py3-none-any.whl"
        wheel.write_bytes(tar.extractfile(f"wheels/{wheel.name}").read())
    assert manifest["revision"] == "r4312a"
    assert manifest["upgrades_from"] == [r.version for r in RELEASES[:-1]]
    assert manifest["repo_version"] == "4.3.12" and manifest["os_releases"] == ["c74", "c76"]
    assert manifest["components"]["qemu/c76"] == "4.2.0"
    with zipfile.ZipFile(wheel) as zf:
        assert "skylift/cli/main.py" in zf.namelist()
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                          "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    assert (target / "skylift-4.3.12.dist-info" / "entry_points.txt").exists()
    from_wheel = subprocess.run(
        [sys.executable, "-c", "import skylift, sys; print(skylift.__file__)"],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert from_wheel.stdout.startswith(str(target)), from_wheel.stderr


def test_upgrade_tool_is_one_runnable_file(built, tmp_path):
    tool = built["3.7.1"] / "skylift-upgrade-3.7.1.pyz"
    ver = subprocess.run([sys.executable, str(tool), "--version"], capture_output=True,
                         text=True)
    assert ver.returncode == 0 and "3.7.1" in ver.stdout
    status = subprocess.run([sys.executable, str(tool), "repo", "status", "--json",
                             "--node-root", str(tmp_path)], capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == {"repos": []}


def test_older_release_is_built_from_its_descriptor(tmp_path, signing):
    res = build_release("4.0.0", tmp_path, os_releases=["c74"], key_path=signing.private_path)
    assert [(a.kind, a.os) for a in res.artefacts][0] == ("os-image", "c74")
    with tarfile.open(tmp_path / "skylift-installer-4.0.0.tar") as tar:
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())
    assert manifest["revision"] == "r400" and manifest["code_version"] == "4.3.12"
    refused = run_cli("release", "build", "--release", "4.3.12", "--os", "c72", "--out",
                      tmp_path / "x", "--key", signing.private_path)
    assert refused.returncode == 2 and "c72 is retired" in refused.stderr


def test_same_input_gives_the_same_bytes(tmp_path, built, signing):
    build_release("4.3.12", tmp_path, os_releases=["c76"], key_path=signing.private_path)
    for name in ("skylift-os-4.3.12-c76.tar", "skylift-os-4.3.12-c76.tar.sig",
                 "skylift-ha-4.3.12.tar"):
        assert (tmp_path / name).read_bytes() == (built["4.3.12"] / name).read_bytes()
