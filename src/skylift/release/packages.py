"""The host package set of a release on one host OS release, and the packages' payloads.

Versions come from skylift.lineage. The two code packages are real: skylift-agent is the
product code stamped with its release and python3-agent-deps the distributions it runs on
(agent_code.py), so a node runs the agent it installed. Every other payload is a small
deterministic file (a header naming the package, then filler), so images are reproducible and
cheap to build while still giving the repository and its HTTP serving real bytes to move.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from skylift.lineage import UPGRADED_HOST_QEMU, release, version_key
from skylift.release.agent_code import agent_deps_bytes, agent_package_bytes

AGENT_PACKAGE = "skylift-agent"
DEPS_PACKAGE = "python3-agent-deps"
# Kernel of each host OS release (CentOS 7.x minor releases).
KERNELS = {"c72": "3.10.0-327", "c74": "3.10.0-693", "c76": "3.10.0-957"}
# From this release on, new installs and upgraded hosts get different QEMUs (SPEC §2, 4.3.12).
SPLIT_QEMU_FROM = "4.3.12"
# Payload sizes: QEMU is the big one, as on a real host.
SIZES = {"qemu": 192 * 1024, "libvirt": 96 * 1024, "kernel": 128 * 1024}
DEFAULT_SIZE = 24 * 1024


@dataclass(frozen=True)
class HostPackage:
    """One package of an OS image."""

    name: str
    version: str
    os: str
    role: str = ""

    @property
    def file(self) -> str:
        return f"{self.name}-{self.version}.{self.os}.pkg"


def host_packages(version: str, os: str) -> list[HostPackage]:
    """The packages the OS image of release `version` carries for host OS release `os`."""
    rel = release(version)
    pkgs = rel.packages[os]
    out = [HostPackage("qemu", pkgs.qemu, os, role="new-install")]
    if version_key(version) >= version_key(SPLIT_QEMU_FROM) and pkgs.qemu != UPGRADED_HOST_QEMU:
        # An upgraded cloud keeps QEMU 2.12 on its hosts; the image must still carry it.
        out.append(HostPackage("qemu", UPGRADED_HOST_QEMU, os, role="upgraded-hosts"))
    elif version_key(version) >= version_key(SPLIT_QEMU_FROM):
        out[0] = HostPackage("qemu", pkgs.qemu, os, role="new-install,upgraded-hosts")
    out += [
        HostPackage("libvirt", pkgs.libvirt, os),
        HostPackage("kernel", KERNELS.get(os, "3.10.0"), os),
        HostPackage(AGENT_PACKAGE, version, os),
        HostPackage(DEPS_PACKAGE, version, os),
        HostPackage("collectd", "5.8.1", os),
    ]
    return out


def payload(pkg: HostPackage) -> bytes:
    """The deterministic content of a package file."""
    if pkg.name == AGENT_PACKAGE:
        return agent_package_bytes(pkg.version)
    if pkg.name == DEPS_PACKAGE:
        return agent_deps_bytes()
    header = (f"skylift host package\nname: {pkg.name}\nversion: {pkg.version}\n"
              f"os: {pkg.os}\n\n").encode()
    size = SIZES.get(pkg.name, DEFAULT_SIZE)
    # Filler from SHA-256 in counter mode: incompressible-looking and the same on every build.
    seed = f"{pkg.name}/{pkg.version}/{pkg.os}".encode()
    blocks = []
    for i in range(size // 32 + 1):
        blocks.append(hashlib.sha256(seed + i.to_bytes(8, "big")).digest())
    return header + b"".join(blocks)[: size - len(header)]
