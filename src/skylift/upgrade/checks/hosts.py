"""Hosts that are not Connected before the upgrade (they will be reconnected after it)."""

from skylift.engine.checks import Severity, check


@check("hosts-not-connected", "Every host is Connected", severity=Severity.WARNING,
       remedy="reconnect or fix these hosts first, or accept that the proof lists them")
def not_connected(ctx):
    bad = ctx.facts.hosts_not_connected
    if bad:
        listed = ", ".join(f"{name} ({status})" for name, status in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        return f"{len(bad)} hosts are not Connected: {listed}{more}"
    return None
