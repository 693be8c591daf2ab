"""The node root's files: package database (atomic, no lost updates), node identity, sim daemon."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from skylift.agent import packages as pkgs
from skylift.agent.hypervisor import get_driver, probe
from skylift.agent.hypervisor.sim import stop_simd
from skylift.agent.node import init_node, read_node
from skylift.errors import NoSuchVm, UsageError

# uuids as the management node makes them (uuid.uuid4().hex: 32 lowercase hex digits)
VM1, VM2 = f"{1:032x}", f"{2:032x}"


def test_install_is_atomic_and_loses_no_update(tmp_path):
    root = tmp_path / "n"
    init_node(root, "host", "c76", {"qemu-kvm": "4.2.0"})

    def worker(i):
        for j in range(20):
            pkgs.install(root, f"pkg-{i}", str(j))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    installed = pkgs.read_packages(root)
    assert installed == {"qemu-kvm": "4.2.0", **{f"pkg-{i}": "19" for i in range(6)}}
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]
    json.loads((root / "packages.json").read_text())


def test_packages_command_over_a_transport(tmp_path):
    root = tmp_path / "n"
    init_node(root, "host", "c76", {"skylift-agent": "4.0.0"})
    out = subprocess.run([sys.executable, "-m", "skylift.agent.packages", "--node-root", str(root),
                          "install", "skylift-agent", "4.3.12"], capture_output=True, text=True)
    assert json.loads(out.stdout)["previous"] == "4.0.0"
    assert pkgs.installed_version(root, "skylift-agent") == "4.3.12"


def test_node_identity_is_kept_and_role_checked(tmp_path):
    first = init_node(tmp_path / "n", "host", "c74")
    assert init_node(tmp_path / "n", "host", "c76") == first == read_node(tmp_path / "n")
    with pytest.raises(UsageError):
        init_node(tmp_path / "n", "vrouter")
    with pytest.raises(UsageError):
        init_node(tmp_path / "m", "compute")


def test_sim_daemon_crash_is_a_host_crash(make_node):
    root = make_node()
    drv = get_driver("sim", root)
    vm = drv.create(VM1, "one", ha=True)
    assert probe(vm.endpoint) == vm.boot_id
    assert stop_simd(root)
    assert probe(vm.endpoint, timeout=0.5) is None
    # a new hypervisor knows the VM again, stopped, as libvirt does after a host reboot
    after = get_driver("sim", root).get(VM1)
    assert after.state == "Stopped" and after.ha is True
    with pytest.raises(NoSuchVm):
        drv.get(VM2)


def test_a_sim_daemon_too_busy_to_answer_is_waited_for_never_replaced(make_node, monkeypatch):
    """As an agent waits for a slow libvirtd: a second daemon would take the socket over and
    know every VM as Stopped (a proof then finds thousands of VMs "no longer running")."""
    import os
    import signal

    from skylift.agent.hypervisor import sim
    from skylift.agent.store import read_json
    from skylift.errors import HypervisorError

    root = make_node()
    drv = get_driver("sim", root)
    vm = drv.create(VM1, "one")
    daemon = read_json(root / sim.PIDFILE)
    assert {"pid", "start"} <= set(daemon)
    monkeypatch.setattr(sim, "REQUEST_TIMEOUT", 0.5)
    os.kill(daemon["pid"], signal.SIGSTOP)  # alive, answering nothing
    try:
        with pytest.raises(HypervisorError, match="did not answer list") as err:
            drv.list()
        assert "its daemon runs" in err.value.why
        assert get_driver("sim", root) is not None  # a new driver does not start another
    finally:
        os.kill(daemon["pid"], signal.SIGCONT)
    assert read_json(root / sim.PIDFILE)["pid"] == daemon["pid"]
    (again,) = drv.list()
    assert (again.state, again.boot_id) == ("Running", vm.boot_id)


def test_process_vm_killed_hard_shows_stopped(make_node):
    import os
    import signal
    import time

    root = make_node()
    drv = get_driver("process", root)
    vm = drv.create(VM1, "one")
    os.kill(vm.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while drv.get(VM1).state == "Running" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert drv.get(VM1).state == "Stopped"
    assert drv.start(VM1).boot_id != vm.boot_id


def test_many_nodes_share_one_sim_daemon(tmp_path):
    from skylift.agent.hypervisor.simaddr import use_shared_daemon

    shared = tmp_path / "farm-hypervisor"
    roots = [tmp_path / f"host{i}" for i in range(3)]
    try:
        for root in roots:
            init_node(root, "host")
            use_shared_daemon(root, shared)
        drivers = [get_driver("sim", root) for root in roots]
        vms = [drv.create(VM1, f"vm on {drv.node_root.name}") for drv in drivers]
        assert len({vm.pid for vm in vms}) == 1  # one hypervisor process for all nodes
        assert len({vm.boot_id for vm in vms}) == 3  # same uuid, distinct VMs per node
        assert [probe(vm.endpoint) for vm in vms] == [vm.boot_id for vm in vms]
        drivers[0].destroy(VM1)
        assert drivers[0].list() == [] and drivers[1].get(VM1).boot_id == vms[1].boot_id
        # a new driver (restarted agent) of one node sees only its own VMs
        assert [v.name for v in get_driver("sim", roots[2]).list()] == ["vm on host2"]
    finally:
        stop_simd(shared)
    assert probe(vms[1].endpoint, timeout=0.5) is None


def test_node_json_keeps_the_os_the_repo_tool_recorded(tmp_path):
    root = tmp_path / "n"
    root.mkdir()
    (root / "node.json").write_text('{"os": "c72"}')
    info = init_node(root, "host", "c76")
    assert info.os_release == "c72"
    data = json.loads((root / "node.json").read_text())
    assert data["os"] == data["os_release"] == "c72" and data["role"] == "host"
