"""Fixtures shared by tests/release and tests/repo: a signing key, built releases, the CLI.

Artefacts are built once per session (building is fast, but many tests need them); a test
that damages one works on its own copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skylift.release.build import build_release
from skylift.release.keys import generate_keypair

RELEASES_BUILT = ("3.2.0", "3.7.1", "4.3.12")


@pytest.fixture(scope="session")
def signing(tmp_path_factory):
    """The release signing key pair of the session."""
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def built(tmp_path_factory, signing) -> dict[str, Path]:
    """Folders holding the signed artefacts of a few releases (read only: copy to damage)."""
    out = {}
    for version in RELEASES_BUILT:
        folder = tmp_path_factory.mktemp(f"release-{version}")
        build_release(version, folder, key_path=signing.private_path)
        out[version] = folder
    return out


@pytest.fixture
def artefacts(built, tmp_path) -> Path:
    """A private copy of the 4.3.12 artefacts."""
    dest = tmp_path / "artefacts"
    shutil.copytree(built["4.3.12"], dest)
    return dest


@pytest.fixture
def trust(skylift_home, signing) -> Path:
    """config.toml of this test's SKYLIFT_HOME trusts the session's release key."""
    skylift_home.mkdir(parents=True, exist_ok=True)
    path = skylift_home / "config.toml"
    path.write_text(f'trusted_keys = ["{signing.public_path}"]\n')
    return path


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real `skylift` command in a new process (wide output: no wrapped file names)."""
    full_env = os.environ | {"COLUMNS": "250"} | (env or {})
    return subprocess.run([sys.executable, "-m", "skylift.cli.main", *map(str, args)],
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start the real `skylift` command without waiting for it."""
    full_env = os.environ | {"COLUMNS": "250"} | (env or {})
    return subprocess.Popen([sys.executable, "-m", "skylift.cli.main", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env)


def tree_digest(root: Path) -> str:
    """SHA-256 over every entry below root: relative path, kind, symlink target, content."""
    sha = hashlib.sha256()
    if not root.exists():
        return "absent"
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            sha.update(f"L {rel} -> {os.readlink(path)}\n".encode())
        elif path.is_dir():
            sha.update(f"D {rel}\n".encode())
        else:
            sha.update(f"F {rel}\n".encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    """Flip one bit of a file in place."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ (1 << bit)]))
