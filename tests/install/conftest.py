"""Signed artefacts of two releases (built once per session) and a free port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from skylift.install import InstallSpec
from skylift.release.build import build_release
from skylift.release.keys import PUBLIC_NAME, generate_keypair


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory) -> dict:
    """{release: (installer, image)} of 4.3.12 and 4.0.0 for c74, and the key to trust."""
    root = tmp_path_factory.mktemp("install-artefacts")
    pair = generate_keypair(root / "keys")
    out = {"key": str(root / "keys" / PUBLIC_NAME)}
    for release in ("4.3.12", "4.0.0"):
        build_release(release, root / release, os_releases=["c74"], key_path=pair.private_path)
        out[release] = (root / release / f"skylift-installer-{release}.tar",
                        root / release / f"skylift-os-{release}-c74.tar")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def make_spec(artefacts, skylift_home):
    """An InstallSpec for this test's state folder on a free loopback port."""

    def _make(release: str = "4.3.12", **kw) -> InstallSpec:
        installer, image = artefacts[release]
        base = dict(installer=installer, image=image, trusted_keys=[artefacts["key"]],
                    os_release="c74", listen="127.0.0.1", port=free_port(),
                    start_timeout=60.0)
        return InstallSpec(**(base | kw))

    return _make


@pytest.fixture
def snapshot():
    """snapshot(home): see _snapshot."""
    return _snapshot


def _snapshot(home: Path, skip=("skylift.db", "mn-")) -> dict[str, tuple[float, str]]:
    """Every file under home with its mtime and digest, but the running MN's own (its
    database, which it heartbeats into, and its log)."""
    import hashlib

    out = {}
    for path in sorted(home.rglob("*")):
        if path.is_file() and not path.is_symlink() and not path.name.startswith(skip):
            out[str(path.relative_to(home))] = (path.stat().st_mtime,
                                                hashlib.sha256(path.read_bytes()).hexdigest())
        elif path.is_symlink():
            out[str(path.relative_to(home))] = (0.0, str(path.readlink()))
    return out
