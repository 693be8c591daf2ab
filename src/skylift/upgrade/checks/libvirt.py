"""3.9.0: libvirt is upgraded on c74 hosts with QEMU 2.9 when they connect."""

from skylift.engine.checks import Severity, check
from skylift.upgrade.checks._lineage import crosses


@check("libvirt-auto-upgrade", "libvirt is upgraded when hosts reconnect",
       severity=Severity.INFO,
       remedy="to keep libvirt as it is, set host.updatePkgWhenConnect to false before the "
              "upgrade (takes effect when the MN restarts)")
def auto_upgrade(ctx):
    hosts = ctx.facts.scalar(
        "SELECT COUNT(*) FROM hosts WHERE os_release = 'c74' AND qemu_version LIKE '2.9%'")
    if not hosts or not (crosses(ctx, "3.9.0") or crosses(ctx, "4.3.12")):
        return None
    setting = ctx.facts.setting("host", "updatePkgWhenConnect") or "true"
    if setting == "false":
        return f"updatePkgWhenConnect is false: libvirt stays as it is on {hosts} c74 hosts"
    return f"libvirt will be upgraded to 4.9.0 on {hosts} c74 hosts with QEMU 2.9"
