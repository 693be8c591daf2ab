"""Artefacts cannot write outside where they are unpacked; the local repo is never downgraded
by accident; an image without the optional manifest `index` key is installed, not a crash.

Every malicious artefact here is signed by the trusted release key: a signature says who
made an archive, not that its members are safe to unpack.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

# The release fixtures (key, built artefacts, CLI runner) live beside the release tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "release"))

import release_fixtures  # noqa: E402
from release_fixtures import run_cli, tree_digest  # noqa: E402

from skylift.errors import ArtefactError  # noqa: E402
from skylift.release import archive, manifest as mf  # noqa: E402
from skylift.release.archive import manifest_bytes  # noqa: E402
from skylift.release.build import installer_content, os_image_content, seal_artefact  # noqa: E402
from skylift.release.keys import load_private_key  # noqa: E402
from skylift.release.verify import VerificationFailed, verify_artefacts  # noqa: E402
from skylift.repo.local import LocalRepo  # noqa: E402
from skylift.repo.update import update_from_image  # noqa: E402
from skylift.upgrade import slots  # noqa: E402

# the release tests' fixtures: a signing key, built releases, a trusting config.toml
artefacts, built = release_fixtures.artefacts, release_fixtures.built
signing, trust = release_fixtures.signing, release_fixtures.trust

NEW, OLD = "4.3.12", "3.7.1"
C74_NEW = f"skylift-os-{NEW}-c74.tar"
C74_OLD = f"skylift-os-{OLD}-c74.tar"
INSTALLER = f"skylift-installer-{NEW}.tar"
TOOL = f"skylift-upgrade-{NEW}.pyz"

# Each a tar member beside the image's own files: (kind, name, link target or payload).
# The name is filled in per test for the absolute case (a path under the test's tmp_path).
UNSAFE_MEMBERS = {
    "dotdot": ("file", "../../../../escaped", b"pwned\n"),
    "dotdot-inside": ("file", "packages/../../../../../escaped", b"pwned\n"),
    "absolute": ("file", "<abs>", b"pwned\n"),
    "symlink-out": ("symlink", "packages/link", "/etc"),
    "symlink-dotdot": ("symlink", "packages/up", "../../../../.."),
    "hardlink": ("hardlink", "packages/hard", "/etc/passwd"),
    "device": ("chardev", "packages/null", ""),
    "fifo": ("fifo", "packages/pipe", ""),
}


def _key(signing):
    return load_private_key(signing.private_path)


def _write_members(tar: tarfile.TarFile, members: list[tuple[str, str, object]]) -> None:
    for kind, name, payload in members:
        info = tarfile.TarInfo(name)
        info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
        if kind == "file":
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
            continue
        info.type = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                     "chardev": tarfile.CHRTYPE, "fifo": tarfile.FIFOTYPE}[kind]
        if kind in ("symlink", "hardlink"):
            info.linkname = payload
        if kind == "chardev":
            info.devmajor, info.devminor = 1, 3
        tar.addfile(info)


def evil_tar(folder: Path, name: str, kind: str, os_release: str | None, manifest: dict,
             files: list[tuple[str, bytes]], extra: list[tuple[str, str, object]],
             signing) -> Path:
    """A tar artefact with the extra members listed in its manifest too, sealed and signed."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = dict(manifest, files=list(manifest["files"]) + [n for _, n, _ in extra])
    path = folder / name
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _write_members(tar, [("file", mf.MANIFEST_NAME, manifest_bytes(manifest))]
                       + [("file", n, d) for n, d in files] + extra)
    seal_artefact(path, kind, manifest["release"], os_release, _key(signing))
    return path


def evil_image(folder: Path, case: str, signing, tmp_path: Path,
               release: str = NEW) -> tuple[Path, str]:
    """A signed c74 OS image of `release` with one unsafe member; (path, the member's name)."""
    kind, name, payload = UNSAFE_MEMBERS[case]
    if name == "<abs>":
        name = str(tmp_path / "abs-escaped")
    manifest, files = os_image_content(release, "c74")
    path = evil_tar(folder, f"skylift-os-{release}-c74.tar", mf.OS_IMAGE, "c74", manifest,
                    files, [(kind, name, payload)], signing)
    return path, name


def escapes(tmp_path: Path) -> list[Path]:
    """Where the malicious members of these tests would land if they got out."""
    return [p for p in (tmp_path / "escaped", tmp_path / "abs-escaped",
                        tmp_path / "a" / "escaped", Path("/escaped")) if p.exists()
            or p.is_symlink()]


def lenient_read_archive(path: Path, is_zip: bool):
    """read_archive as it was before members were checked: lets an unsafe archive through
    verify, so the check at the moment of unpacking is tested on its own."""
    with tarfile.open(path, "r:") as tar:
        names, manifest = [], None
        for member in tar:
            if member.name == mf.MANIFEST_NAME:
                manifest = json.loads(tar.extractfile(member).read())
            else:
                names.append(member.name)
    return manifest, names


# --- release verify ------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(UNSAFE_MEMBERS))
def test_verify_refuses_an_os_image_with_an_unsafe_member(case, signing, trust, tmp_path):
    image, member = evil_image(tmp_path / "evil", case, signing, tmp_path)
    res = run_cli("release", "verify", image)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert image.name in res.stderr and member in res.stderr, res.stderr
    with pytest.raises(VerificationFailed) as err:
        verify_artefacts([image], [str(signing.public_path)])
    (failure,) = err.value.failures
    assert failure.file == str(image) and member in failure.problem
    assert not escapes(tmp_path)


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink-out", "hardlink"])
def test_verify_refuses_an_installer_bundle_with_an_unsafe_member(case, signing, trust,
                                                                   tmp_path):
    kind, name, payload = UNSAFE_MEMBERS[case]
    name = str(tmp_path / "abs-escaped") if name == "<abs>" else name
    manifest, files = installer_content(NEW)
    path = evil_tar(tmp_path / "evil", INSTALLER, mf.INSTALLER, None, manifest, files,
                    [(kind, name, payload)], signing)
    res = run_cli("release", "verify", path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert INSTALLER in res.stderr and name in res.stderr, res.stderr


def _evil_wheel(entries: list[zipfile.ZipInfo | str]) -> bytes:
    """The real wheel's entries plus the given ones (a name, or a ZipInfo such as a symlink)."""
    _, files = installer_content(NEW)
    real = files[0][1]
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(real)) as src, zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        for entry in entries:
            out.writestr(entry, "/etc" if isinstance(entry, zipfile.ZipInfo) else b"pwned\n")
    return buf.getvalue()


def _symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16)  # S_IFLNK: unpacked by some tools as a symlink
    return info


def _installer_with_wheel(folder: Path, wheel: bytes, signing) -> Path:
    manifest, files = installer_content(NEW)
    files = [(files[0][0], wheel)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / INSTALLER
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _write_members(tar, [("file", mf.MANIFEST_NAME, manifest_bytes(manifest))]
                       + [("file", n, d) for n, d in files])
    seal_artefact(path, mf.INSTALLER, NEW, None, _key(signing))
    return path


WHEEL_CASES = {
    "dotdot": ["../../../../escaped"],
    "absolute": ["/escaped"],
    "symlink": [_symlink_entry("skylift/evil-link")],
}


@pytest.mark.parametrize("case", sorted(WHEEL_CASES))
def test_verify_refuses_an_installer_whose_wheel_has_an_unsafe_entry(case, signing, trust,
                                                                    tmp_path):
    path = _installer_with_wheel(tmp_path / "evil", _evil_wheel(WHEEL_CASES[case]), signing)
    res = run_cli("release", "verify", path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    entry = WHEEL_CASES[case][0]
    entry = entry.filename if isinstance(entry, zipfile.ZipInfo) else entry
    assert INSTALLER in res.stderr and entry in res.stderr, res.stderr


def test_verify_refuses_an_upgrade_tool_with_an_unsafe_entry(signing, trust, tmp_path):
    folder = tmp_path / "evil"
    folder.mkdir()
    manifest = mf.ToolManifest(kind=mf.TOOL, release=NEW, code_version=NEW,
                               files=["__main__.py", "../../escaped"], entry="__main__.py")
    path = folder / TOOL
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(mf.MANIFEST_NAME, manifest_bytes(manifest.model_dump()))
        zf.writestr("__main__.py", "print('hi')\n")
        zf.writestr("../../escaped", "pwned\n")
    seal_artefact(path, mf.TOOL, NEW, None, _key(signing))
    res = run_cli("release", "verify", path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert TOOL in res.stderr and "../../escaped" in res.stderr, res.stderr


def test_the_real_artefacts_still_verify(artefacts, trust):
    res = run_cli("release", "verify", artefacts, "--upgrade", "multi-mn", "--json")
    assert res.returncode == 0, res.stderr


# --- repo update -----------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["dotdot", "dotdot-inside", "absolute", "symlink-out",
                                  "hardlink", "device"])
def test_repo_update_refuses_an_unsafe_image_and_writes_nothing(case, built, signing, trust,
                                                                 tmp_path):
    node = tmp_path / "a" / "node"
    update_from_image(built[NEW] / C74_NEW, node)
    before = tree_digest(node)
    image, member = evil_image(tmp_path / "evil", case, signing, tmp_path)
    res = run_cli("repo", "update", "--image", image, "--node-root", node)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert image.name in res.stderr and member in res.stderr, res.stderr
    assert tree_digest(node) == before
    assert not escapes(tmp_path)


@pytest.mark.parametrize("case", ["dotdot", "dotdot-inside", "absolute", "symlink-out",
                                  "hardlink", "device", "fifo"])
def test_unpacking_refuses_an_unsafe_member_even_when_verify_let_it_through(
        case, built, signing, trust, tmp_path, monkeypatch):
    """Defence in depth: the unpacking itself refuses, whatever verify said."""
    import skylift.release.verify as verify_mod

    monkeypatch.setattr(verify_mod, "read_archive", lenient_read_archive)
    node = tmp_path / "a" / "node"
    update_from_image(built[NEW] / C74_NEW, node)
    before = tree_digest(node)
    image, member = evil_image(tmp_path / "evil", case, signing, tmp_path)
    verify_artefacts([image], [str(signing.public_path)])  # the bypass works
    with pytest.raises(ArtefactError) as err:
        update_from_image(image, node)
    assert member in err.value.what
    assert tree_digest(node) == before
    assert not escapes(tmp_path)


# --- the upgrade's install-software step (unpacks the installer's wheel) -------------------

@pytest.mark.parametrize("case", sorted(WHEEL_CASES))
def test_installing_the_software_refuses_an_unsafe_wheel_even_unverified(case, signing,
                                                                         tmp_path):
    path = _installer_with_wheel(tmp_path / "evil", _evil_wheel(WHEEL_CASES[case]), signing)
    home = tmp_path / "home"
    with pytest.raises(ArtefactError):
        slots.install(home, path, NEW)
    assert not slots.installed(home, NEW)
    assert not escapes(tmp_path)
    assert not list(slots.slots_dir(home).glob(".staging-*"))


def test_installing_the_software_refuses_an_unsafe_bundle_member_even_unverified(
        signing, tmp_path):
    manifest, files = installer_content(NEW)
    # the wheel is a link to a file elsewhere: never followed
    path = evil_tar(tmp_path / "evil", INSTALLER, mf.INSTALLER, None, manifest, [],
                    [("symlink", files[0][0], "/etc/passwd")], signing)
    home = tmp_path / "home"
    with pytest.raises(ArtefactError):
        slots.install(home, path, NEW)
    assert not slots.installed(home, NEW)


def test_installing_the_real_software_still_works(built, tmp_path):
    home = tmp_path / "home"
    target = slots.install(home, built[NEW] / INSTALLER, NEW)
    assert (target / "skylift" / "__init__.py").is_file()
    assert slots.installed(home, NEW)


# --- downgrade -------------------------------------------------------------------------------

def test_repo_update_refuses_a_downgrade_unless_allowed(built, trust, tmp_path):
    node = tmp_path / "node"
    update_from_image(built[OLD] / C74_OLD, node)
    update_from_image(built[NEW] / C74_NEW, node)
    before = tree_digest(node)
    res = run_cli("repo", "update", "--image", built[OLD] / C74_OLD, "--node-root", node)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "downgrade" in res.stderr and OLD in res.stderr and NEW in res.stderr, res.stderr
    assert "--allow-downgrade" in res.stderr and "rollback" in res.stderr, res.stderr
    assert tree_digest(node) == before
    ok = run_cli("repo", "update", "--image", built[OLD] / C74_OLD, "--node-root", node,
                 "--allow-downgrade", "--json")
    assert ok.returncode == 0, ok.stderr
    info = LocalRepo(node).info("c74")
    assert (info.repo_version, info.previous) == (OLD, NEW)


def test_rollback_still_goes_back_and_the_same_release_is_no_downgrade(built, trust, tmp_path):
    node = tmp_path / "node"
    update_from_image(built[OLD] / C74_OLD, node)
    update_from_image(built[NEW] / C74_NEW, node)
    back = run_cli("repo", "rollback", "--node-root", node)
    assert back.returncode == 0, back.stderr
    assert LocalRepo(node).info("c74").repo_version == OLD
    # the rolled-back repo may be refreshed again (an upgrade run again after its rollback)
    again = run_cli("repo", "update", "--image", built[NEW] / C74_NEW, "--node-root", node)
    assert again.returncode == 0, again.stderr
    assert LocalRepo(node).info("c74").repo_version == NEW
    # the same image again changes nothing and is no downgrade
    same = run_cli("repo", "update", "--image", built[NEW] / C74_NEW, "--node-root", node)
    assert same.returncode == 0 and "nothing to do" in same.stdout, same.stderr


def test_the_upgrade_rollback_of_the_repo_refresh_still_switches_back(built, trust, tmp_path):
    """The upgrade's own undo (RefreshLocalRepo.undo) goes back to the old repo; it does not
    go through `repo update`, so the downgrade refusal does not stop it."""
    from types import SimpleNamespace

    from skylift.upgrade.steps.repo import RefreshLocalRepo

    node = tmp_path / "node"
    update_from_image(built[OLD] / C74_OLD, node)
    update_from_image(built[NEW] / C74_NEW, node)

    class State(dict):
        def set(self, key, value):
            self[key] = value

    run = SimpleNamespace(ctx=SimpleNamespace(node_root=node, mn_os="c74"),
                          state=State(repo_refreshed=True))
    RefreshLocalRepo().undo(run)
    assert LocalRepo(node).info("c74").repo_version == OLD


# --- a manifest without the optional index key ---------------------------------------------

def test_repo_update_of_an_image_whose_manifest_omits_the_index_key(signing, trust, tmp_path):
    """`index` is optional in an OS image's manifest (default repodata/index.json)."""
    manifest, files = os_image_content(NEW, "c74")
    del manifest["index"]
    path = evil_tar(tmp_path / "img", C74_NEW, mf.OS_IMAGE, "c74", manifest, files, [],
                    signing)
    node = tmp_path / "node"
    res = run_cli("repo", "update", "--image", path, "--node-root", node)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert LocalRepo(node).info("c74").repo_version == NEW


def test_repo_update_of_an_image_without_its_repo_index_is_refused(signing, trust, tmp_path):
    manifest, files = os_image_content(NEW, "c74")
    del manifest["index"]
    files = [(n, d) for n, d in files if n != "repodata/index.json"]
    manifest["files"] = [n for n, _ in files]
    path = evil_tar(tmp_path / "img", C74_NEW, mf.OS_IMAGE, "c74", manifest, files, [],
                    signing)
    node = tmp_path / "node"
    res = run_cli("repo", "update", "--image", path, "--node-root", node)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "repodata/index.json" in res.stderr, res.stderr
    assert LocalRepo(node).info("c74").repo_version is None


def test_member_checks_are_exposed_for_every_unpacker():
    """One place says what is unsafe (archive.py); the unpackers and verify share it."""
    assert archive.unsafe_name("../x") and archive.unsafe_name("/x")
    assert archive.unsafe_name("a/../../x") and not archive.unsafe_name("packages/a.pkg")
