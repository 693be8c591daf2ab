"""one QEMU version per cluster; 4.3.12 new-image hosts need a new cluster."""

from skylift.engine.checks import Issue, Severity, check
from skylift.lineage import UPGRADED_HOST_QEMU
from skylift.upgrade.checks._lineage import crosses


@check("qemu-per-cluster", "Every cluster runs one QEMU version", severity=Severity.WARNING,
       remedy="move hosts so that each cluster runs one QEMU version (live-migrate VMs off "
              "the odd hosts and re-add them to a cluster of their own)")
def per_cluster(ctx):
    return [f"cluster {name} ({uuid}) mixes QEMU {', '.join(sorted(versions))}"
            for (uuid, name), versions in sorted(ctx.facts.cluster_qemu.items(),
                                                 key=lambda item: (item[0][1], item[0][0]))
            if len(versions) > 1]


@check("qemu-expansion", "Expansion after the upgrade goes to a new cluster",
       severity=Severity.INFO, remedy="")
def expansion(ctx):
    if crosses(ctx, "4.3.12"):
        return Issue(f"existing hosts keep QEMU {UPGRADED_HOST_QEMU}; hosts installed from the "
                     "new image get QEMU 4.2 and cannot join an old cluster",
                     remedy="add new hosts to a new cluster")
    return None
