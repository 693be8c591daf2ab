"""The `process` driver: every VM is a real detached process (see vmproc.py).

State on disk, per VM, under NODE_ROOT/vms/UUID/: spec.json (name, HA flag) written by the
driver, run.json (pid, port, boot id) written by the VM process itself. A VM is Running when
its run file names a live VM process of that uuid. Nothing lives in the driver object, so a
driver made by a restarted agent sees exactly what the old one saw. Every such path comes from
vmproc.vm_dir, which refuses a uuid that is not one and a folder that leads out.
"""

from __future__ import annotations

import shutil
import threading
import time

from skylift.agent.hypervisor.base import RUNNING, STOPPED, HypervisorDriver, VmState
from skylift.agent.hypervisor.daemon import spawn_daemon
from skylift.processes import pid_alive, terminate
from skylift.agent.hypervisor.vmproc import RUN_FILE, VMS_DIR, vm_dir
from skylift.agent.ids import is_uuid, safe_child
from skylift.agent.store import read_json, write_json
from skylift.errors import NoSuchVm, UsageError

VMPROC_MODULE = "skylift.agent.hypervisor.vmproc"


class ProcessDriver(HypervisorDriver):
    """VMs as detached processes answering TCP probes."""

    name = "process"

    def __init__(self, node_root, host: str = "127.0.0.1") -> None:
        super().__init__(node_root, host)
        # one agent serves API calls from a thread pool; one VM must not be started twice
        self._lock = threading.RLock()

    # --- reading state -------------------------------------------------------------------
    def _spec(self, uuid: str) -> dict:
        spec = read_json(vm_dir(self.node_root, uuid) / "spec.json")
        if spec is None:
            raise NoSuchVm(f"no VM {uuid} on node {self.node_root.name}",
                           why="it was never created here or was destroyed",
                           next="list the node's VMs with GET /v1/vms")
        return spec

    def _state(self, uuid: str, spec: dict) -> VmState:
        run = read_json(vm_dir(self.node_root, uuid) / RUN_FILE, {})
        vm = VmState(uuid=uuid, name=spec["name"], state=STOPPED, ha=bool(spec.get("ha")))
        if run and pid_alive(run.get("pid"), uuid):
            vm.state = RUNNING
            vm.boot_id = run["boot_id"]
            vm.pid = run["pid"]
            vm.started_at = run.get("started_at")
            vm.endpoint = f"tcp://{run['host']}:{run['port']}"
        return vm

    def get(self, uuid: str) -> VmState:
        return self._state(uuid, self._spec(uuid))

    def list(self) -> list[VmState]:
        try:
            root = safe_child(self.node_root, VMS_DIR)
        except UsageError:
            return []  # a vms folder leading out of the node root holds none of its VMs
        if not root.is_dir():
            return []
        out = []
        for entry in sorted(root.iterdir()):
            if not is_uuid(entry.name):
                continue  # not a VM folder (a uuid is all a VM folder is named)
            try:
                spec = read_json(vm_dir(self.node_root, entry.name) / "spec.json")
            except UsageError:
                continue  # a symlink leading out of the node root: never followed
            if spec is not None:
                out.append(self._state(entry.name, spec))
        return out

    # --- changing state ------------------------------------------------------------------
    def create(self, uuid: str, name: str, ha: bool = False, start: bool = True) -> VmState:
        with self._lock:
            spec_path = vm_dir(self.node_root, uuid) / "spec.json"
            if read_json(spec_path) is None:
                write_json(spec_path, {"uuid": uuid, "name": name, "ha": ha,
                                       "created_at": time.time()})
            return self.start(uuid) if start else self.get(uuid)

    def start(self, uuid: str) -> VmState:
        with self._lock:
            vm = self.get(uuid)
            if vm.state == RUNNING:
                return vm
            folder = vm_dir(self.node_root, uuid)
            spawn_daemon(VMPROC_MODULE,
                         ["--node-root", str(self.node_root), "--uuid", uuid, "--host", self.host],
                         folder / "vm.log")
            return self.get(uuid)

    def stop(self, uuid: str) -> VmState:
        with self._lock:
            vm = self.get(uuid)
            if vm.pid:
                terminate(vm.pid, uuid)
            run_path = vm_dir(self.node_root, uuid) / RUN_FILE
            run = read_json(run_path, {})
            if run and not pid_alive(run.get("pid"), uuid):
                run_path.unlink(missing_ok=True)  # killed hard: its run file is stale
            return self.get(uuid)

    def reboot(self, uuid: str) -> VmState:
        with self._lock:
            self.stop(uuid)
            return self.start(uuid)

    def destroy(self, uuid: str) -> None:
        with self._lock:
            self.stop(uuid)
            shutil.rmtree(vm_dir(self.node_root, uuid), ignore_errors=True)


def kill_all(node_root) -> int:
    """Kill every VM process of a node (for teardown of tests and lab nodes); returns the count."""
    driver = ProcessDriver(node_root)
    killed = 0
    for vm in driver.list():
        if vm.pid:
            terminate(vm.pid, vm.uuid, timeout=2.0)
            killed += 1
    return killed
