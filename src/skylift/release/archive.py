"""Artefact containers: uncompressed POSIX tar for bundles and images, zip for the tool.

Tar because every operator's machine can list and unpack it (`tar -tf`), and uncompressed
because the payloads are packages that are already compressed upstream; members are written
with fixed owners and times so the same input gives the same bytes. MANIFEST.json comes first.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

from skylift.release.manifest import MANIFEST_NAME

MTIME = 0


def write_tar(path: Path, manifest: dict, files: list[tuple[str, bytes]]) -> None:
    """Write a tar with MANIFEST.json first, then the files in the given order."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(MANIFEST_NAME, manifest_bytes(manifest)), *files]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = MTIME
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))


def manifest_bytes(manifest: dict) -> bytes:
    """The canonical JSON of a manifest."""
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


class ArchiveProblem(Exception):
    """Why an archive cannot be read (worded for a person)."""


def read_archive(path: Path, is_zip: bool) -> tuple[dict, list[str]]:
    """(manifest, names of the other members) of a tar or (is_zip) zip artefact."""
    # The container is chosen by the signed kind, not sniffed: a tar holding a wheel also
    # looks like a zip from its end.
    try:
        if is_zip:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                if MANIFEST_NAME not in names:
                    raise ArchiveProblem(f"it holds no {MANIFEST_NAME}")
                manifest = json.loads(zf.read(MANIFEST_NAME))
        else:
            with tarfile.open(path, "r:") as tar:
                names, manifest = [], None
                for member in tar:
                    if member.name == MANIFEST_NAME and member.isfile():
                        manifest = json.loads(tar.extractfile(member).read())
                    else:
                        names.append(member.name)
                if manifest is None:
                    raise ArchiveProblem(f"it holds no {MANIFEST_NAME}")
    except (tarfile.TarError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError,
            EOFError, OSError) as exc:
        raise ArchiveProblem(f"it cannot be read as an artefact ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArchiveProblem(f"its {MANIFEST_NAME} is not an object")
    return manifest, [n for n in names if n != MANIFEST_NAME]
