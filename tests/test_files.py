"""skylift.files: atomic writes keep the old file on failure, modes from creation, digests."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from skylift import files


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_write_atomic_is_private_by_default_and_takes_a_given_mode(tmp_path):
    files.write_atomic(tmp_path / "secret", b"s")
    files.write_atomic(tmp_path / "public", b"p", mode=0o644)
    assert _mode(tmp_path / "secret") == 0o600
    assert _mode(tmp_path / "public") == 0o644
    assert (tmp_path / "secret").read_bytes() == b"s"


@pytest.mark.parametrize("write", [files.write_atomic, files.write_synced])
def test_a_file_written_over_takes_the_new_mode_not_the_old_one(tmp_path, write):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    path.chmod(0o666)
    write(path, b"new")
    assert _mode(path) == 0o600 and path.read_bytes() == b"new"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    files.write_json(path, {"v": 1})

    def no_rename(*_):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk gone"):
        files.write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_value_json_cannot_write_changes_nothing(tmp_path):
    path = tmp_path / "state.json"
    files.write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        files.write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_write_json_passes_the_dumps_options(tmp_path):
    files.write_json(tmp_path / "a.json", {"b": 1, "a": object}, default=str, sort_keys=True)
    text = (tmp_path / "a.json").read_text()
    assert text.startswith('{"a": "<class') and text.endswith("}\n")


def test_exclusive_never_replaces_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "token"
    files.write_atomic(path, b"first", exclusive=True)
    with pytest.raises(FileExistsError):
        files.write_atomic(path, b"second", exclusive=True)
    assert path.read_bytes() == b"first" and _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token"]


def test_write_synced_and_replace(tmp_path):
    tmp, final = tmp_path / ".x.tmp", tmp_path / "x"
    files.write_synced(tmp, b"data", 0o640)
    files.replace(tmp, final)
    assert final.read_bytes() == b"data" and _mode(final) == 0o640 and not tmp.exists()
    files.fsync_dir(tmp_path)  # a folder can be synced on its own


@pytest.mark.parametrize("size", [0, 1, 65536, 65537, 3 * 65536 + 5])
def test_digests_match_hashlib(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "blob"
    path.write_bytes(data)
    d = files.digests(path, chunk=65536)
    assert d.size == size
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert d.md5 == hashlib.md5(data).hexdigest()
    assert files.sha256(path, chunk=65536) == hashlib.sha256(data).hexdigest()
    assert files.sha256(path) == d.sha256
