"""the hosts run the MN's OS release, so one local repository serves them all."""

from skylift.engine.checks import check


@check("same-os-release", "Hosts run the management node's OS release",
       remedy="this case needs an OS upgrade of the hosts (or the MN) first; then run the "
              "upgrade again")
def same_os_release(ctx):
    mn_os = ctx.mn_os
    if mn_os is None:
        return ("the management node's OS release is unknown (no node.json in "
                f"{ctx.node_root})")
    others = {os: n for os, n in ctx.facts.host_os.items() if os != mn_os}
    if others:
        listed = ", ".join(f"{n} on {os}" for os, n in sorted(others.items()))
        return f"the MN runs {mn_os} but hosts run another OS release: {listed}"
    return None
