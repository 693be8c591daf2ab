"""The release lineage: every release skylift knows, oldest first, and what each one brings.

This is the single source of truth for release numbers, their database revision, the host OS
releases each one supports and the versions of the core virtualisation packages it ships.
Everything else (migrations, release builds, the lab, upgrade checks) reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skylift.errors import UsageError


@dataclass(frozen=True)
class HostPackages:
    """Versions of the core virtualisation packages on one host OS release."""

    qemu: str
    libvirt: str


@dataclass(frozen=True)
class Release:
    """One release of the lineage."""

    version: str
    revision: str  # the Alembic revision that brings a database to this release
    os_releases: tuple[str, ...]  # host OS releases this release ships an OS image for
    packages: dict[str, HostPackages] = field(default_factory=dict)
    retired_os: dict[str, str] = field(default_factory=dict)  # retired OS -> repo it points at
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[int, ...]:
        return version_key(self.version)

    def __str__(self) -> str:
        return self.version


def version_key(version: str) -> tuple[int, ...]:
    """Sortable key of a dotted release number ("4.3.12" -> (4, 3, 12))."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise UsageError(
            f"'{version}' is not a release number",
            why="release numbers are dotted integers such as 3.7.1",
            next=f"use one of: {', '.join(r.version for r in RELEASES)}",
        ) from None


RELEASES: tuple[Release, ...] = (
    Release(
        "3.2.0",
        "r320",
        ("c72", "c74"),
        {"c72": HostPackages("2.6.0", "3.2.0"), "c74": HostPackages("2.9.0", "3.9.0")},
        notes=("shared volumes are created in raw format",),
    ),
    Release(
        "3.7.1",
        "r371",
        ("c74", "c76"),
        {"c74": HostPackages("2.9.0", "3.9.0"), "c76": HostPackages("2.12.0", "4.1.0")},
        retired_os={"c72": "c74"},
        notes=("c72 is retired: its local repo points at the c74 one",),
    ),
    Release(
        "3.9.0",
        "r390",
        ("c74", "c76"),
        {"c74": HostPackages("2.9.0", "4.9.0"), "c76": HostPackages("2.12.0", "4.9.0")},
        retired_os={"c72": "c74"},
        notes=("libvirt 4.9.0 on c74 hosts with QEMU 2.9, unless updatePkgWhenConnect = false",),
    ),
    Release(
        "4.0.0",
        "r400",
        ("c74", "c76"),
        {"c74": HostPackages("2.12.0", "4.9.0"), "c76": HostPackages("2.12.0", "4.9.0")},
        retired_os={"c72": "c74"},
        notes=("VPC vRouters, Enterprise Management, LDAP on Enterprise Management",),
    ),
    Release(
        "4.3.12",
        "r4312a",
        ("c74", "c76"),
        {"c74": HostPackages("2.12.0", "4.9.0"), "c76": HostPackages("4.2.0", "4.9.0")},
        retired_os={"c72": "c74"},
        notes=("new installs get QEMU 4.2; upgraded hosts keep QEMU 2.12",),
    ),
)

NEWEST: Release = RELEASES[-1]
# The first release whose agents are deployed with a certificate of the cloud's CA and speak
# only TLS (skylift.pki); the agents of older ones speak plain HTTP until an upgrade.
AGENT_TLS_SINCE = NEWEST.version
# The first release whose agents upgrade themselves on the MN's order over mutual TLS
# (skylift.agent.self_upgrade); older agents are upgraded over SSH.
AGENT_SELF_UPGRADE_SINCE = NEWEST.version
# The first release whose agents answer GET /v1/inventory (version and VMs in one request).
AGENT_INVENTORY_SINCE = NEWEST.version
# An upgraded cloud keeps this QEMU on its existing hosts (SPEC §2, 4.3.12).
UPGRADED_HOST_QEMU = "2.12.0"


def release(version: str) -> Release:
    """The release with this number, or a UsageError that lists the known ones."""
    for rel in RELEASES:
        if rel.version == version:
            return rel
    version_key(version)  # a malformed number gets its own message
    raise UsageError(
        f"unknown release {version}",
        why="skylift only knows the releases of its lineage",
        next=f"use one of: {', '.join(r.version for r in RELEASES)}",
    )


def release_of_revision(revision: str | None) -> Release | None:
    """The release a database at this Alembic revision belongs to (None for an empty database)."""
    if revision is None:
        return None
    for rel in RELEASES:
        if rel.revision == revision:
            return rel
    return None


def ships_agent_tls(version: str) -> bool:
    """Whether the agents of this release hold certificates (TLS) from their deployment."""
    return version_key(version) >= version_key(AGENT_TLS_SINCE)


def older_releases() -> tuple[Release, ...]:
    """Every release an upgrade can start from."""
    return RELEASES[:-1]


def _since(version: str | None, first: str) -> bool:
    try:
        return bool(version) and version_key(version) >= version_key(first)
    except UsageError:  # an odd version ("unknown"): not known to have it
        return False


def upgrades_itself(version: str | None) -> bool:
    """Whether an agent of this version can take an upgrade order."""
    return _since(version, AGENT_SELF_UPGRADE_SINCE)


def answers_inventory(version: str | None) -> bool:
    """Whether an agent of this version answers GET /v1/inventory."""
    return _since(version, AGENT_INVENTORY_SINCE)
