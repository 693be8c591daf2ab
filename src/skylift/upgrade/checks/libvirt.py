"""3.9.0: libvirt is upgraded on c74 hosts with QEMU 2.9 when they connect."""

import re

from skylift.engine.checks import Severity, check
from skylift.lineage import release
from skylift.upgrade.checks._lineage import crosses

NEW_LIBVIRT = release("3.9.0").packages["c74"].libvirt


def _key(version: str | None) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version or ""))


@check("libvirt-auto-upgrade", "libvirt is upgraded when hosts reconnect",
       severity=Severity.INFO,
       remedy="to keep libvirt as it is, set host.updatePkgWhenConnect to false before the "
              "upgrade (takes effect when the MN restarts)")
def auto_upgrade(ctx):
    if not (crosses(ctx, "3.9.0") or crosses(ctx, "4.3.12")):
        return None
    # Hosts already on the new libvirt are left alone, so they are not counted.
    hosts = sum(n for version, n in ctx.facts.rows(
        "SELECT libvirt_version, COUNT(*) FROM hosts WHERE os_release = 'c74' "
        "AND qemu_version LIKE '2.9%' GROUP BY libvirt_version")
        if _key(version) < _key(NEW_LIBVIRT))
    if not hosts:
        return None
    if not ctx.facts.flag("host", "updatePkgWhenConnect"):
        return f"updatePkgWhenConnect is false: libvirt stays as it is on {hosts} c74 hosts"
    return f"libvirt will be upgraded to {NEW_LIBVIRT} on {hosts} c74 hosts with QEMU 2.9"
