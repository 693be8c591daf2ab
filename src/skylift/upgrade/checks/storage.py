"""Storage caveats: CD-ROM hot plug on Ceph with CEPHX, raw shared volumes."""

from skylift.engine.checks import Severity, check
from skylift.upgrade.checks._lineage import crosses


@check("cephx-cdrom-hotplug", "CD-ROM hot plug on Ceph with CEPHX", severity=Severity.WARNING,
       remedy="attach ISOs to stopped VMs on Ceph primary storages with CEPHX, or plan a "
              "maintenance window for VMs that need hot plug")
def cephx_cdrom_hotplug(ctx):
    if not crosses(ctx, "3.9.0"):
        return None
    n = ctx.facts.scalar("SELECT COUNT(*) FROM primary_storages WHERE type = 'Ceph' "
                         "AND ceph_cephx = :t", t=True)
    if n:
        return (f"{n} Ceph primary storages use CEPHX: with the new libvirt, hot plugging a "
                "CD-ROM into a running VM may fail")
    return None


@check("raw-shared-volumes", "Shared volumes are raw", severity=Severity.INFO,
       remedy="detach a shared volume before a snapshot, resize or image creation")
def raw_shared_volumes(ctx):
    n = ctx.facts.scalar("SELECT COUNT(*) FROM volumes WHERE is_shareable = :t "
                         "AND format = 'raw'", t=True)
    if n:
        return (f"{n} shared volumes are raw: no snapshot, no resize, and no image from a "
                "running VM while attached")
    return None
