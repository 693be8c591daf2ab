"""The MN's long-running parts: connection manager (with the node registry) and VM HA.

They run in normal mode only, from the app's lifespan; a drain stops them early, and so does
the quorum watch (skylift.mn.quorum) while the MN's Galera member is cut off from the
majority, starting them again once it is back. One at a time (MnState.parts_lock): a drain
arriving while the watch starts them must find them started, and stop them.
"""

from __future__ import annotations

import logging

from skylift.config import skylift_home
from skylift.mn.state import MnState

log = logging.getLogger("skylift.mn")


async def start_parts(mn: MnState) -> None:
    """Start the connection manager and VM HA."""
    async with mn.parts_lock:
        await _start(mn)


async def resume_parts(mn: MnState) -> bool:
    """Start the parts again after the quorum watch stopped them, unless the MN should not
    run them (maintenance, a drain since) or runs them already; whether it started them."""
    async with mn.parts_lock:
        if mn.run.maintenance or mn.draining or mn.manager is not None:
            return False
        await _start(mn)
        return True


async def _start(mn: MnState) -> None:
    # imported here: the maintenance mode never loads them (they use the newest models)
    from skylift.mn.connections import ConnectionManager, ConnectOptions
    from skylift.mn.nodes import live_node_ops, registry_path
    from skylift.mn.ownership import Ownership
    from skylift.mn.vm_ha import VmHa
    from skylift.pki.trust import AgentTrust

    # how the manager reaches nodes to upgrade them: the node registry, re-read as hosts are
    # added (this machine's agents while there is none)
    node_ops = live_node_ops(registry_path(skylift_home()))
    # several MNs on one database: each drives its share of the resources
    ownership = (Ownership(mn.engine, mn.heartbeat.uuid)
                 if mn.share_hosts and mn.heartbeat is not None else None)
    mn.manager = ConnectionManager(mn.engine, ConnectOptions(agent_port=mn.agent_port),
                                   repo_root=mn.node_root, node_ops=node_ops,
                                   trust=AgentTrust.of_home(skylift_home()),
                                   ownership=ownership)
    # the reconnect storm runs behind: the API serves meanwhile, and work on a host that is
    # still Connecting is refused
    await mn.manager.start(wait=False)
    mn.vm_ha = VmHa(mn.engine, mn.manager)
    await mn.vm_ha.start()


async def stop_parts(mn: MnState) -> None:
    """Stop VM HA, then the connection manager (at drain, shutdown or quorum loss, whichever
    is first)."""
    async with mn.parts_lock:
        parts, mn.vm_ha, mn.manager = (mn.vm_ha, mn.manager), None, None  # stop once
        for part in parts:
            if part is not None:
                try:
                    await part.stop()
                except Exception:  # stopping must go on: the heartbeat still has to say stopped
                    log.exception("stopping %s failed", type(part).__name__)
