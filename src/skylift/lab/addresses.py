"""Addresses for lab hosts, and the open-file limit a farm of thousands needs.

Every simulated host gets its own address so the MN sees distinct hosts on the same agent and
SSH ports, as on a real network: in 127.0.0.0/8 for an MN on this machine, or in the lab
range 198.18.0.0/15 for MNs in network namespaces (skylift.lab.host_range makes such a range
local to this machine). 127.0.0.1 is left to everything else, and no address ends in .0 or
.255 (they look like network and broadcast addresses to tools).
"""

from __future__ import annotations

import ipaddress
import resource
from collections.abc import Iterator

from skylift.errors import UsageError

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")


def loopback_addresses(n: int, first: str = "127.1.0.1") -> list[str]:
    """n host addresses from first on (loopback, or in the lab range), skipping 127.0.0.1
    and last octets 0 and 255."""
    return list(_iter(n, first))


def _iter(n: int, first: str) -> Iterator[str]:
    try:
        addr = int(ipaddress.IPv4Address(first))
    except ValueError:
        raise UsageError(f"'{first}' is not an IPv4 address",
                         next="give a loopback address such as 127.1.0.1") from None
    start = ipaddress.IPv4Address(first)
    home = next((net for net in (LOOPBACK, LAB_RANGE) if start in net), None)
    if home is None:
        raise UsageError(f"{first} is not a loopback or lab address",
                         why="the lab sends traffic to loopback and its own range only",
                         next=f"give an address in {LOOPBACK} or {LAB_RANGE}")
    last = int(home.broadcast_address) - 1
    made = 0
    while made < n:
        if addr > last:
            raise UsageError(f"not enough addresses for {n} hosts from {first}",
                             next="start from a lower address")
        octets = ipaddress.IPv4Address(addr).packed
        if octets[1:] != b"\0\0\1" and octets[3] not in (0, 255):
            yield str(ipaddress.IPv4Address(addr))
            made += 1
        addr += 1


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE to at least wanted if possible; returns the soft limit now in force.

    Root may go above the hard limit, up to /proc/sys/fs/nr_open; others stop at the hard one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        with open("/proc/sys/fs/nr_open") as fh:
            ceiling = int(fh.read())
    except (OSError, ValueError):
        ceiling = hard
    target = min(wanted, ceiling)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
    except (ValueError, PermissionError):
        target = min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
