"""The skylift wheel and the upgrade-tool zipapp, built from the running code.

The wheel is written directly (PEP 427: a deterministic zip with a dist-info folder) rather than
through pip or setuptools: it needs no network or build isolation, takes milliseconds, and the
same source gives the same bytes. The package source is read once per process and cached,
because tests and labs build many releases in one run.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import skylift
from skylift.errors import Refused

# Fixed timestamp: the same code gives byte-identical wheels and tools.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
ENTRY_POINT = "skylift.cli.main:main"


def package_dir() -> Path:
    """The folder of the running skylift package."""
    return Path(skylift.__file__).resolve().parent


# The lab (host farm, probes, demo, sample inventories) is a harness built on the product, run
# from a development install; no MN, agent or upgrade tool needs it, so none carries it.
NOT_SHIPPED = ("lab",)


@lru_cache(maxsize=1)
def package_files() -> tuple[tuple[str, bytes], ...]:
    """(archive name, content) of every file of the skylift product, sorted; the lab and
    caches are left out."""
    root = package_dir()
    if not root.is_dir():
        raise Refused("cannot build artefacts from a packed skylift",
                      why=f"{root} is not a folder",
                      next="run `skylift release build` from an installed skylift")
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (path.is_dir() or rel.parts[0] in NOT_SHIPPED or "__pycache__" in rel.parts
                or path.suffix in (".pyc", ".pyo")):
            continue
        files.append((f"skylift/{rel.as_posix()}", path.read_bytes()))
    return tuple(files)


def _zip(entries: list[tuple[str, bytes]], prefix: bytes = b"", compresslevel: int = 6) -> bytes:
    """A deterministic zip of (name, content) in the given order (fixed times and modes)."""
    buf = io.BytesIO()
    buf.write(prefix)  # as zipapp does: the shebang line, then the archive
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=compresslevel) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=compresslevel)
    return buf.getvalue()


def _requirements() -> list[str]:
    try:
        return list(metadata.requires("skylift") or [])
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return []


def wheel_name() -> str:
    """The file name of the skylift wheel of the running code."""
    return f"skylift-{skylift.__version__}-py3-none-any.whl"


@lru_cache(maxsize=1)
def build_wheel() -> bytes:
    """The pure-Python wheel of the running skylift (MN, agents and tools, no lab)."""
    version = skylift.__version__
    dist = f"skylift-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", "Name: skylift", f"Version: {version}",
            "Summary: A private cloud of the ZStack kind, and the system that upgrades it.",
            "Requires-Python: >=3.11"]
    meta += [f"Requires-Dist: {req}" for req in _requirements()]
    entries = list(package_files())
    entries += [
        (f"{dist}/METADATA", ("\n".join(meta) + "\n").encode()),
        (f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: skylift.release\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist}/entry_points.txt", f"[console_scripts]\nskylift = {ENTRY_POINT}\n".encode()),
        (f"{dist}/top_level.txt", b"skylift\n"),
    ]
    record = []
    for name, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    entries.append((f"{dist}/RECORD", ("\n".join(record) + "\n").encode()))
    return _zip(entries)


_MAIN = '''\
"""skylift upgrade tool for release {release} (built from skylift {code})."""
import sys

if sys.argv[1:] == ["--version"]:
    print("skylift upgrade tool {release} (skylift {code})")
    sys.exit(0)
from skylift.cli.main import main

main()
'''


def build_zipapp(release: str, manifest: bytes) -> bytes:
    """The upgrade tool: a zipapp of the skylift package that runs `skylift` (needs its deps)."""
    main = _MAIN.format(release=release, code=skylift.__version__).encode()
    entries = [("__main__.py", main), ("MANIFEST.json", manifest), *package_files()]
    return _zip(entries, prefix=b"#!/usr/bin/env python3\n")
