"""MD5 and SHA-256 of a file in a single pass.

Operators are handed MD5 today; SHA-256 is what the signature covers. Both are computed from
the same chunk as it is read, so a 1 GiB artefact is read once, not twice.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# Large reads amortise the syscall and the Python call overhead per chunk.
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Digests:
    """Size and digests of one file."""

    size: int
    md5: str
    sha256: str


def file_digests(path: Path | str, chunk: int = CHUNK) -> Digests:
    """MD5 and SHA-256 of a file, reading it once (both hashers update on every chunk)."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as fh:
        try:  # we read once, front to back: tell the kernel so it reads ahead
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            part = view[:n]
            md5.update(part)
            sha.update(part)
            size += n
    return Digests(size=size, md5=md5.hexdigest(), sha256=sha.hexdigest())


def bytes_sha256(data: bytes) -> str:
    """SHA-256 hex digest of bytes."""
    return hashlib.sha256(data).hexdigest()
