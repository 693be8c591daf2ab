"""Hypervisor drivers: where VMs live, outside the agent process.

    sim      simulated VMs held by one detached daemon per node (scale)
    process  each VM a real detached process answering TCP probes (continuity tests)
"""

from __future__ import annotations

from pathlib import Path

from skylift.agent.hypervisor.base import RUNNING, STOPPED, HypervisorDriver, VmState
from skylift.agent.hypervisor.probe import probe
from skylift.errors import UsageError

DRIVERS = ("sim", "process")


def get_driver(name: str, node_root: Path, host: str = "127.0.0.1") -> HypervisorDriver:
    """A driver over the node root; it re-adopts every VM still running there."""
    if name == "sim":
        from skylift.agent.hypervisor.sim import SimDriver

        return SimDriver(node_root, host)
    if name == "process":
        from skylift.agent.hypervisor.process_driver import ProcessDriver

        return ProcessDriver(node_root, host)
    raise UsageError(f"unknown hypervisor driver '{name}'", why="skylift has two drivers",
                     next=f"use one of: {', '.join(DRIVERS)}")


def kill_node_vms(node_root: Path) -> None:
    """Stop every VM process and the sim daemon of a node: teardown for tests and the lab."""
    from skylift.agent.hypervisor.process_driver import kill_all
    from skylift.agent.hypervisor.sim import stop_simd

    kill_all(node_root)
    stop_simd(node_root)


__all__ = ["DRIVERS", "HypervisorDriver", "RUNNING", "STOPPED", "VmState", "get_driver",
           "kill_node_vms", "probe"]
