"""Files that a crash leaves old or new, never half written; and digests of files.

An atomic write puts the data in a temporary file beside the target, fsyncs it, renames it
over the target and fsyncs the folder: without the last step a power cut can bring the old
name back, without the first the new name can point at empty blocks. Files are created with
their mode from the start (0600 unless told), never chmod-ed afterwards, so a private file is
not readable by others even for a moment.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

PRIVATE = 0o600
PUBLIC = 0o666  # what open() gives a new file: the umask decides (0644 under the usual 022)
# Large reads amortise the syscall and the Python call overhead per chunk.
CHUNK = 4 * 1024 * 1024


def fsync_dir(folder: Path | str) -> None:
    """Make a folder's entries (creations, renames, removals) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync(fh: IO) -> None:
    """Flush an open file object and fsync it."""
    fh.flush()
    os.fsync(fh.fileno())


def write_synced(path: Path | str, data: bytes, mode: int = PRIVATE, *,
                 durable: bool = True) -> None:
    """Write a file and fsync it (unless not durable), not its folder (an existing one is
    removed first).

    For files that appear under their final name some other way (a folder renamed into
    place); anything else wants write_atomic.
    """
    path = Path(path)
    path.unlink(missing_ok=True)  # O_CREAT's mode applies only to a file it creates
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def create_private(path: Path | str, mode: int = PRIVATE) -> BinaryIO:
    """A new file opened for writing, created with mode from the start (never chmod-ed later).

    O_EXCL: an existing file (or a planted symlink) is an error, never overwritten or followed.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    return os.fdopen(fd, "wb")


def copy_atomic(src: Path | str, dest: Path | str, *, mode: int = PRIVATE) -> None:
    """Copy a file to dest atomically and durably (dest created with mode)."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with create_private(tmp, mode) as out, open(src, "rb") as source:
            while chunk := source.read(CHUNK):
                out.write(chunk)
            sync(out)
        replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def replace(tmp: Path | str, path: Path | str) -> None:
    """Rename a finished, fsync'ed file over path (same folder) and make the rename durable."""
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def write_atomic(path: Path | str, data: bytes, *, mode: int = PRIVATE,
                 exclusive: bool = False, durable: bool = True) -> None:
    """Put data at path atomically and durably, the file created with mode (umask applies).

    exclusive: never replace an existing file (FileExistsError); readers still see the whole
    content or no file, never an empty one. durable=False skips the fsyncs (still atomic):
    for throwaway files written by the thousand, such as a lab farm's nodes.
    """
    path = Path(path)
    # unique per call: two threads writing one file must not share a temporary
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write_synced(tmp, data, mode, durable=durable)
        if exclusive:
            os.link(tmp, path)  # fails, unlike a rename, when path exists
            tmp.unlink()
            if durable:
                fsync_dir(path.parent)
        elif durable:
            replace(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path | str, data: Any, *, mode: int = PRIVATE, exclusive: bool = False,
               **dumps: Any) -> None:
    """write_atomic of data as JSON (json.dumps options in dumps) and a final newline."""
    text = json.dumps(data, **dumps) + "\n"  # before the write: a bad value changes nothing
    write_atomic(path, text.encode(), mode=mode, exclusive=exclusive)


@dataclass(frozen=True)
class Digests:
    """Size and digests of one file."""

    size: int
    md5: str
    sha256: str


def _hash_into(path: Path | str, hashers: list, chunk: int) -> int:
    """Feed the file to every hasher from the same chunk, reading it once; returns its size."""
    size = 0
    with open(path, "rb", buffering=0) as fh:
        # no 4 MiB buffer for a file of a few bytes (an ETag); a file that grows still works
        buf = bytearray(max(1, min(chunk, os.fstat(fh.fileno()).st_size + 1)))
        view = memoryview(buf)
        try:  # we read once, front to back: tell the kernel so it reads ahead
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
        while n := fh.readinto(buf):
            part = view[:n]
            for h in hashers:
                h.update(part)
            size += n
    return size


def sha256(path: Path | str, chunk: int = CHUNK) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    _hash_into(path, [h], chunk)
    return h.hexdigest()


def digests(path: Path | str, chunk: int = CHUNK) -> Digests:
    """Size, MD5 and SHA-256 of a file in one pass (operators are handed MD5; SHA-256 is what
    signatures cover)."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = _hash_into(path, [md5, sha], chunk)
    return Digests(size=size, md5=md5.hexdigest(), sha256=sha.hexdigest())
