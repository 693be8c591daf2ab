"""Addresses for the hosts of a lab whose MNs live in network namespaces.

An MN in a namespace cannot reach this machine's loopback addresses, where the lab's agents
(or the host farm) usually listen. So the hosts of such a lab get addresses in 198.19.0.0/16
(inside the lab range 198.18.0.0/15) that are *local* to the root namespace: one route

    ip route add local 198.19.X.0/N dev skyl<B>br table local

makes every address of the range this machine's own (as 127.0.0.0/8 is), so agents bind
them as they bind loopback ones, and each MN namespace routes the range to the bridge's
address. Nothing is forwarded: the root namespace is the destination. The route hangs on the
lab's bridge, so it goes away with the bridge (`lab down`, or remove_lab_network after a
crash) and nothing is left to find by name.

The range is the smallest aligned block that holds the lab's agents, the first one in
198.19.0.0/16 that no local route of another lab covers yet.
"""

from __future__ import annotations

import ipaddress
import json
import math

from skylift.lab.errors import LabError
from skylift.lab.netns import LabNetwork, NsNode, ip

HOST_RANGE = ipaddress.ip_network("198.19.0.0/16")
PER_24 = 253  # usable addresses of a /24: no .0, .255 (skylift.lab.addresses), one spare


def _prefix_for(count: int) -> int:
    """The prefix length of the smallest aligned block holding count host addresses."""
    blocks = max(1, math.ceil(count / PER_24))
    return 24 - math.ceil(math.log2(blocks))


def _taken() -> list[ipaddress.IPv4Network]:
    """Local routes already in 198.19.0.0/16 (other labs' host ranges)."""
    out = ip(["-json", "route", "show", "table", "local"]).stdout.strip()
    taken = []
    for route in json.loads(out) if out else []:
        try:
            net = ipaddress.ip_network(route.get("dst", ""), strict=False)
        except ValueError:
            continue
        if net.version == 4 and net.overlaps(HOST_RANGE):
            taken.append(net)
    return taken


def add_host_range(net: LabNetwork, mn_nodes: list[NsNode], count: int) -> str:
    """A free range for count hosts, local to this machine on the lab's bridge and routed
    from each MN node to the bridge; returns its first host address."""
    prefix = _prefix_for(count)
    if prefix < HOST_RANGE.prefixlen:
        raise LabError(f"{count} hosts do not fit in {HOST_RANGE}",
                       next="build a lab with fewer hosts")
    taken = _taken()
    free = next((s for s in HOST_RANGE.subnets(new_prefix=prefix)
                 if not any(s.overlaps(t) for t in taken)), None)
    if free is None:
        raise LabError(f"no range of {2 ** (32 - prefix)} addresses is free in "
                       f"{HOST_RANGE}", why=f"other labs hold {[str(t) for t in taken]}",
                       next="take another lab down (`skylift lab down --name ...`)")
    ip(["route", "add", "local", str(free), "dev", net.bridge, "table", "local"])
    for node in mn_nodes:
        ip(["-n", node.netns, "route", "add", str(free), "via", net.gateway])
    return str(free.network_address + 1)
