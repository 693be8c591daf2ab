"""Which members of an archive may be unpacked: one rule for every unpacking (release
artefacts, MN slots, agent packages on a node). A signature or a digest says who made an
archive, not that it is safe to unpack."""

from __future__ import annotations

import re
import stat
import zipfile

_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name(name: str) -> str | None:
    """Why a member name would write outside the folder it is unpacked in (None: it would not)."""
    if not name or "\x00" in name:
        return "an empty or malformed name"
    if name.startswith("/") or "\\" in name or _DRIVE.match(name):
        return "an absolute path: it would be written outside the folder it is unpacked in"
    if ".." in name.split("/"):
        return "a `..` step: it would be written outside the folder it is unpacked in"
    return None


def unsafe_zip_entry(info: zipfile.ZipInfo) -> str | None:
    """Why a zip entry may not be unpacked (None: a plain file or folder with a safe name)."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "a device or special file"
    return unsafe_name(info.filename)
