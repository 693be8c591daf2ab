"""The interface every hypervisor driver implements, and the state it reports for a VM.

A driver owns nothing in the agent process: VMs live in processes that outlive the agent
(the sim daemon, or one process per VM), so a new driver object over the same node root
re-adopts every VM that is still running.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

RUNNING = "Running"
STOPPED = "Stopped"


@dataclass
class VmState:
    """A VM as the hypervisor sees it.

    boot_id changes only when the VM really (re)starts; endpoint is where the VM answers
    probes (see probe.py), None while it is stopped.
    """

    uuid: str
    name: str
    state: str
    boot_id: str | None = None
    ha: bool = False
    endpoint: str | None = None
    pid: int | None = None
    started_at: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class HypervisorDriver(ABC):
    """Create, start, stop, reboot, destroy and list the VMs of one node."""

    name = "abstract"

    def __init__(self, node_root: Path, host: str = "127.0.0.1") -> None:
        self.node_root = Path(node_root).resolve()
        self.host = host

    @abstractmethod
    def create(self, uuid: str, name: str, ha: bool = False, start: bool = True) -> VmState:
        """Define a VM and (by default) start it; creating an existing uuid is a no-op."""

    @abstractmethod
    def start(self, uuid: str) -> VmState:
        """Start a stopped VM (a new boot id); a running VM is left as it is."""

    @abstractmethod
    def stop(self, uuid: str) -> VmState:
        """Stop a running VM; a stopped VM is left as it is."""

    @abstractmethod
    def reboot(self, uuid: str) -> VmState:
        """Restart the VM for real: it gets a new boot id."""

    @abstractmethod
    def destroy(self, uuid: str) -> None:
        """Stop the VM if running and forget it."""

    @abstractmethod
    def list(self) -> list[VmState]:
        """Every VM defined on the node, running or not."""

    @abstractmethod
    def get(self, uuid: str) -> VmState:
        """One VM, or NoSuchVm."""

    def probe(self, uuid: str, timeout: float = 1.0) -> str | None:
        """The boot id the VM itself answers with, or None when it does not answer."""
        from skylift.agent.hypervisor.probe import probe

        vm = self.get(uuid)
        return probe(vm.endpoint, timeout) if vm.endpoint else None

    def close(self) -> None:
        """Release what the driver holds in this process (never the VMs)."""
