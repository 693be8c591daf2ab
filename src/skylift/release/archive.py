"""Artefact containers: uncompressed POSIX tar for bundles and images, zip for the tool.

Tar because every operator's machine can list and unpack it (`tar -tf`), and uncompressed
because the payloads are packages that are already compressed upstream; members are written
with fixed owners and times so the same input gives the same bytes. MANIFEST.json comes first.

Members are plain files with relative names. Reading an artefact refuses any other member —
an absolute name, a `..` step, a symbolic or hard link, a device, a FIFO — and so does every
unpacking (unsafe_tar_member, unsafe_zip_entry): a signature says who made an archive, not
that it is safe to unpack.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

from skylift.member_names import unsafe_name, unsafe_zip_entry  # noqa: F401 (one rule)
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


class UnsafeMember(ArchiveProblem):
    """The archive holds a member that would write outside where it is unpacked."""


# A drive prefix (C:...) makes a name absolute too, for whoever unpacks it on Windows.
# An archive nested in an artefact whose entries are checked too (the installer's wheel).
NESTED_ZIP_SUFFIX = ".whl"


def unsafe_tar_member(member: tarfile.TarInfo, dest: Path | str = "/nonexistent") -> str | None:
    """Why a tar member may not be unpacked into dest (None: a plain file or folder inside it).

    The explicit checks come first (they word the reason); tarfile's own "data" filter
    (tarfile.data_filter) is asked as well, so nothing it refuses gets through.
    """
    if member.issym():
        return f"a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "a device file"
    if member.isfifo():
        return "a FIFO"
    if not (member.isfile() or member.isdir()):
        return "neither a file nor a folder"
    why = unsafe_name(member.name)
    if why:
        return why
    try:
        tarfile.data_filter(member, str(dest))
    except tarfile.FilterError as exc:
        return f"refused by tarfile's data filter ({exc})"
    return None


def check_zip(zf: zipfile.ZipFile, where: str = "") -> None:
    """Raise ArchiveProblem naming the first unsafe entry of a zip (where: a prefix naming the
    zip inside its artefact)."""
    for info in zf.infolist():
        why = unsafe_zip_entry(info)
        if why:
            raise UnsafeMember(f"it holds an unsafe member {where}{info.filename!r}: {why}")


def read_archive(path: Path, is_zip: bool) -> tuple[dict, list[str]]:
    """(manifest, names of the other members) of a tar or (is_zip) zip artefact.

    Refused (ArchiveProblem, naming the member) when any member is unsafe to unpack, a nested
    wheel's entries included, or when a name appears twice.
    """
    # The container is chosen by the signed kind, not sniffed: a tar holding a wheel also
    # looks like a zip from its end.
    try:
        if is_zip:
            with zipfile.ZipFile(path) as zf:
                check_zip(zf)
                names = zf.namelist()
                if MANIFEST_NAME not in names:
                    raise ArchiveProblem(f"it holds no {MANIFEST_NAME}")
                manifest = json.loads(zf.read(MANIFEST_NAME))
        else:
            with tarfile.open(path, "r:") as tar:
                names, manifest = [], None
                for member in tar:
                    why = unsafe_tar_member(member)
                    if why:
                        raise UnsafeMember(f"it holds an unsafe member {member.name!r}: {why}")
                    if member.name == MANIFEST_NAME and member.isfile():
                        manifest = json.loads(tar.extractfile(member).read())
                    else:
                        names.append(member.name)
                    if member.isfile() and member.name.endswith(NESTED_ZIP_SUFFIX):
                        with zipfile.ZipFile(tar.extractfile(member)) as nested:
                            check_zip(nested, where=f"{member.name}: ")
                if manifest is None:
                    raise ArchiveProblem(f"it holds no {MANIFEST_NAME}")
        twice = sorted(n for n, count in Counter(names).items() if count > 1)
        if twice:  # the second copy would replace the first when unpacked
            raise UnsafeMember(f"it holds the member {twice[0]!r} more than once")
    except (tarfile.TarError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError,
            EOFError, OSError) as exc:
        raise ArchiveProblem(f"it cannot be read as an artefact ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArchiveProblem(f"its {MANIFEST_NAME} is not an object")
    return manifest, [n for n in names if n != MANIFEST_NAME]
