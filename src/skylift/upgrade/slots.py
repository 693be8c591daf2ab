"""Management node software slots: the new release installed beside the old, then switched.

    $SKYLIFT_HOME/mn/slots/<release>/      the installer's wheel unpacked (importable code)
    $SKYLIFT_HOME/mn/slots/current         symlink to the slot the MN runs from

Installing never touches the running slot; switching is one atomic rename of a symlink.
The wheel is unpacked only if the bundle's member is a plain file and every entry of the wheel
is a plain file with a relative name (release.archive's checks, again here after verify).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from skylift.errors import ArtefactError
from skylift.release.archive import unsafe_tar_member, unsafe_zip_entry

MARKER = "SLOT.json"


def slots_dir(home: Path) -> Path:
    path = home / "mn" / "slots"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def slot_path(home: Path, release: str) -> Path:
    return slots_dir(home) / release


def installed(home: Path, release: str) -> bool:
    return (slot_path(home, release) / MARKER).exists()


def install(home: Path, installer: Path, release: str) -> Path:
    """Unpack the installer bundle's wheel into the release's slot (staged, then renamed)."""
    target = slot_path(home, release)
    if installed(home, release):
        return target
    staging = target.with_name(f".staging-{release}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o755)
    try:
        with tarfile.open(installer) as tar:
            wheels = [m for m in tar.getmembers() if m.name.startswith("wheels/")
                      and m.name.endswith(".whl")]
            if not wheels:
                raise ArtefactError(f"the installer bundle {installer} holds no wheel",
                                    next="download the installer bundle again")
            why = unsafe_tar_member(wheels[0])
            if why:  # a link is never followed, not even inside the bundle
                raise _unsafe(installer, wheels[0].name, why)
            data = tar.extractfile(wheels[0]).read()
        with zipfile.ZipFile(io.BytesIO(data)) as whl:
            # checked here too, whatever verify said: zipfile would quietly rename these
            for info in whl.infolist():
                why = unsafe_zip_entry(info)
                if why:
                    raise _unsafe(installer, f"{wheels[0].name}: {info.filename}", why)
            whl.extractall(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / MARKER).write_text(json.dumps({"release": release, "wheel": wheels[0].name}))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def _unsafe(installer: Path, name: str, why: str) -> ArtefactError:
    return ArtefactError(f"the installer bundle {installer.name}: refused to unpack {name!r}: "
                         f"{why}",
                         why="a member must be a plain file inside the folder it is unpacked "
                             "in, signed or not",
                         next="do not use this bundle: get it again from the official source")


def current(home: Path) -> str | None:
    """The release of the slot the MN runs from (None: the software installed on the host)."""
    link = slots_dir(home) / "current"
    return os.readlink(link) if link.is_symlink() else None


def switch(home: Path, release: str | None) -> None:
    """Point `current` at a release's slot (None: remove it), atomically."""
    link = slots_dir(home) / "current"
    if release is None:
        link.unlink(missing_ok=True)
        return
    tmp = link.with_name(".current.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(release, tmp)
    os.replace(tmp, link)


def path_of(home: Path, release: str | None) -> Path | None:
    return slot_path(home, release) if release else None
