"""The identifiers an agent accepts, and the one way a name becomes a path under a folder.

A uuid (VM, volume, node) is exactly what the management node and the lab make:
`uuid.uuid4().hex`, 32 lowercase hex digits — no dashes, no dots, no slashes, nothing else.
Package names and versions are those of a repository index (letters, digits and . _ + - ,
a version also ~ and :), starting with a letter or a digit.

The API validates every identifier at its edge (pydantic patterns, the same ones as here);
the drivers and stores check again, and turn a name into a path only through `safe_child`,
which resolves it (symlinks included) and refuses anything that is not inside its folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from skylift.errors import UsageError

UUID_PATTERN = r"^[0-9a-f]{32}$"
PACKAGE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"
PACKAGE_VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+~:-]{0,127}$"

UUID_RULE = ("a uuid is exactly 32 lowercase hex digits, the form uuid.uuid4().hex makes "
             "(e.g. 0123456789abcdef0123456789abcdef): no dashes, dots, slashes or capitals")
PACKAGE_NAME_RULE = ("a package name is 1 to 128 letters, digits and . _ + - , starting with a "
                     "letter or a digit (no slashes)")
PACKAGE_VERSION_RULE = ("a package version is 1 to 128 letters, digits and . _ + ~ : - , "
                        "starting with a letter or a digit (no slashes)")

# pattern -> (the rule a person reads, what to do instead): for the API's validation errors
RULES = {
    UUID_PATTERN: (UUID_RULE, "send the uuid as the management node made it (uuid.uuid4().hex)"),
    PACKAGE_NAME_PATTERN: (PACKAGE_NAME_RULE,
                           "name the package as the repository index does (e.g. qemu-kvm)"),
    PACKAGE_VERSION_PATTERN: (PACKAGE_VERSION_RULE,
                              "give the version as the repository index does (e.g. 4.3.12)"),
}

# re.fullmatch, never re.match: "$" would let a trailing newline through
_UUID = re.compile(UUID_PATTERN.strip("^$"))
_PACKAGE_NAME = re.compile(PACKAGE_NAME_PATTERN.strip("^$"))
_PACKAGE_VERSION = re.compile(PACKAGE_VERSION_PATTERN.strip("^$"))


def is_uuid(value: object) -> bool:
    """Whether value is a uuid as skylift makes them (32 lowercase hex digits)."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def check_uuid(value: object, what: str = "VM") -> str:
    """The uuid, or a UsageError saying which form is accepted."""
    if not is_uuid(value):
        raise UsageError(f"invalid {what} uuid {value!r}", why=UUID_RULE,
                         next=RULES[UUID_PATTERN][1])
    return value  # type: ignore[return-value]


def check_package(name: object, version: object | None = None) -> None:
    """Refuse a package name (and version, when given) that is not of the accepted form."""
    if not (isinstance(name, str) and _PACKAGE_NAME.fullmatch(name)):
        raise UsageError(f"invalid package name {name!r}", why=PACKAGE_NAME_RULE,
                         next=RULES[PACKAGE_NAME_PATTERN][1])
    if version is not None and not (isinstance(version, str)
                                    and _PACKAGE_VERSION.fullmatch(version)):
        raise UsageError(f"invalid version {version!r} of package {name}",
                         why=PACKAGE_VERSION_RULE, next=RULES[PACKAGE_VERSION_PATTERN][1])


def safe_child(folder: Path | str, name: str) -> Path:
    """folder/name, resolved (symlinks followed), refused unless strictly inside folder.

    name is relative ("vms", "vms/UUID", "spec.json"); an absolute name, an empty one, a NUL,
    "..", or a symlink leading out of folder is refused with a UsageError. The path returned
    is the resolved one, so what is checked is what gets used.
    """
    base = Path(folder).resolve()
    if (not isinstance(name, str) or not name or "\0" in name or os.path.isabs(name)
            or name.strip("/") in ("", ".")):
        raise UsageError(f"refused the name {name!r} under {base}",
                         why="a child of a folder has a relative, non-empty name",
                         next="use a valid identifier")
    path = (base / name).resolve()
    if path == base or not path.is_relative_to(base):
        raise UsageError(f"refused the name {name!r}: it leads out of {base}",
                         why=f"{base / name} resolves to {path}, which is not inside {base}",
                         next="use a valid identifier; a symlink that leads out of the folder "
                              "is never followed")
    return path
