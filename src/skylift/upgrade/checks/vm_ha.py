"""VM HA is turned off for the upgrade and put back as it was."""

from skylift.engine.checks import Severity, check


@check("vm-ha", "VM HA is handled", severity=Severity.INFO, remedy="")
def state(ctx):
    value = ctx.facts.setting("ha", "enable")
    if value is None:
        return "VM HA is not configured"
    on = ctx.facts.flag("ha", "enable")
    return (f"VM HA is {'on' if on else 'off'}: skylift turns it off for the "
            f"upgrade (reconnecting hosts can look down) and sets it back to '{value}' after")
