"""4.0.0: legacy virtual routers become VPC vRouters."""

from skylift.engine.checks import Severity, check
from skylift.upgrade.checks._lineage import crosses


@check("vpc-vrouters", "Legacy virtual routers become VPC vRouters", severity=Severity.INFO,
       remedy="")
def vpc_vrouters(ctx):
    if not crosses(ctx, "4.0.0") or "virtual_routers" not in ctx.facts.tables:
        return None
    n = ctx.facts.counts.get("virtual_routers", 0)
    nets = ctx.facts.scalar(
        "SELECT COUNT(*) FROM l3_networks WHERE type = 'L3VRouterNetwork'")
    return (f"{n} virtual routers become VPC vRouters (same UUIDs and attachments) and "
            f"{nets} vRouter networks become VPC networks")
