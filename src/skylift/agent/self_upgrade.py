"""An agent upgrading itself on the MN's order (POST /v1/agent/upgrade).

An agent can when three things hold: its release has it (lineage.AGENT_SELF_UPGRADE_SINCE),
it serves mutual TLS (the order can then only come from a client the cloud's CA certified,
never from whoever reaches its port), and it can restart itself (a configured agent service,
or the lab's farm). It installs the skylift-agent version it is told from its own repository
(NODE_ROOT/repo.json: downloaded, size and SHA-256 checked against the repository's index and
against the MN's own digest of the package). Then it hands its listening socket to the new
agent and answers with the new agent's version document (skylift.agent.handover), or, where
it cannot (under systemd), answers and only then restarts onto it.

One authenticated request per node instead of an SSH session with a key exchange, a
channel and a command chain (docs/benchmarks.md). Agents that cannot are upgraded over SSH
as before (skylift.mn.agent_upgrade).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from skylift.agent import packages as pkgs
from skylift.agent.handover import HandoverFailed, hand_over
from skylift.agent.store import read_json, write_json
from skylift.errors import Refused
from skylift.lineage import upgrades_itself

RESTART_LOG = "agent-restart.log"  # in NODE_ROOT: what the detached restart printed


def can_upgrade_itself(node) -> bool:
    """Whether this node's agent takes an upgrade order (what /v1/version reports)."""
    return (upgrades_itself(node.agent_version) and bool(getattr(node, "serves_tls", False))
            and bool(getattr(node, "restarts_itself", False)))


def upgrade_self(node, version: str, sha256: str | None, scheme: str) -> dict:
    """Install skylift-agent `version` on the node (the restart is the caller's, once the
    answer is sent); Refused, changing nothing, when this agent cannot take the order."""
    if scheme != "https":
        raise Refused("this agent takes an upgrade order only over mutual TLS",
                      why="the order came over plain HTTP, where anyone reaching the agent's "
                          "port could send it",
                      next="connect with the cloud's CA (the MN does), or upgrade the agent "
                           "over SSH")
    if not can_upgrade_itself(node):
        raise Refused(f"the agent {node.agent_version} of this node cannot upgrade itself",
                      why="its release predates self-upgrade, or it runs without a service "
                          "that restarts it, or without a certificate",
                      next="upgrade it over SSH (the MN does so for such agents)")
    done = pkgs.install_package(node.node_root, pkgs.AGENT_PACKAGE, version, sha256=sha256)
    return {**done, "restarting": True}


def hand_over_to_installed(node_root: Path, listener) -> dict:
    """Start the agent service's command (the code now installed) on this agent's socket
    (skylift.agent.handover); its version document once it serves. HandoverFailed else."""
    from skylift.agent.launch import agent_env
    from skylift.agent.server import AGENT_FILE
    from skylift.agent.service import agent_unit, read_spec

    root = Path(node_root)
    argv = list(agent_unit(root, read_spec(root)).argv)
    mine = read_json(root / AGENT_FILE)
    try:
        return hand_over(listener, argv, agent_env(), root / "agent.log")
    except HandoverFailed:
        write_json(root / AGENT_FILE, mine)  # the successor that failed may have taken it
        raise


def restart_service_detached(node_root: Path) -> None:
    """Restart this node's agent service from a process of its own session: it outlives the
    agent it stops, and starts the code now installed (skylift.agent.service restart)."""
    from skylift.agent.code_install import launcher
    from skylift.agent.launch import agent_env

    root = Path(node_root)
    with open(root / RESTART_LOG, "ab") as log:
        subprocess.Popen([str(launcher(root)), "-m", "skylift.agent.service", "--node-root",
                          str(root), "restart"], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log, start_new_session=True, env=agent_env(), close_fds=True)
