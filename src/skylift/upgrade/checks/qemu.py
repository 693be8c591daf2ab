"""R-CLOUD-5: one QEMU version per cluster; 4.3.12 new-image hosts need a new cluster."""

from skylift.engine.checks import Issue, Severity, check
from skylift.lineage import UPGRADED_HOST_QEMU
from skylift.upgrade.checks._lineage import crosses


@check("qemu-per-cluster", "Every cluster runs one QEMU version", severity=Severity.WARNING,
       remedy="move hosts so that each cluster runs one QEMU version (live-migrate VMs off "
              "the odd hosts and re-add them to a cluster of their own)")
def per_cluster(ctx):
    mixed = {name: versions for name, versions in ctx.facts.cluster_qemu.items()
             if len(versions) > 1}
    return [f"cluster {name} mixes QEMU {', '.join(sorted(v))}" for name, v in mixed.items()]


@check("qemu-expansion", "Expansion after the upgrade goes to a new cluster",
       severity=Severity.INFO, remedy="")
def expansion(ctx):
    if crosses(ctx, "4.3.12"):
        return Issue(f"existing hosts keep QEMU {UPGRADED_HOST_QEMU}; hosts installed from the "
                     "new image get QEMU 4.2 and cannot join an old cluster",
                     remedy="add new hosts to a new cluster")
    return None
