"""Lab namespace nodes: real network namespaces on a lab bridge, each with a real OpenSSH sshd,
reached with the product's own SSH client (root, iproute2 and OpenSSH needed; skipped otherwise).

Lab blocks 97 (the two-node lab most tests share) and 98 (remove, and a crashed lab) are this
file's own: blocks come from skylift.lab.state.block_of(name), and no other test builds
namespaces on them. A file lock per block keeps two runs of this file on one machine apart.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests_support import block_lock

from skylift.errors import NodeLoginRefused, UsageError
from skylift.lab import netns
from skylift.lab.netns import LabNetwork, remove_lab_network
from skylift.lab.node_sshd import (NodeSshd, client_keypair, known_hosts_line, start_sshd,
                                   stop_sshd)
from skylift.processes import pid_alive
from skylift.transport.ssh import SshPool, SshTarget

BLOCK = 97         # the shared two-node lab
CRASH_BLOCK = 98   # remove() and the crashed lab
LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")





def ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()


def build(block: int, base: Path, count: int = 2):
    """A lab of `count` nodes with an sshd each; (net, nodes, sshds, client key)."""
    remove_lab_network(block)  # leftovers of an interrupted run
    forward = ip_forward()
    net = LabNetwork(block, base / "nodes")
    key, pub = client_keypair(base / "keys")
    started = time.monotonic()
    nodes = net.create([f"host-{i}" for i in range(1, count + 1)], os_release="c74")
    sshds = [start_sshd(net, node, authorized_keys=pub) for node in nodes]
    per_node = (time.monotonic() - started) / count
    print(f"namespace + sshd: {per_node * 1000:.0f} ms per node")
    assert ip_forward() == forward  # the lab never routes beyond the machine
    return net, nodes, sshds, key


def names_left(block: int) -> list[str]:
    """Everything of the block the system still shows: namespaces, links, /etc/netns."""
    pre = f"skyl{block}"
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    etc = os.listdir("/etc/netns") if os.path.isdir("/etc/netns") else []
    left = [w for w in ns.split() if w.startswith(pre)]
    left += [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
             if line.split(":")[1].strip().startswith(pre)]
    return left + [f"/etc/netns/{e}" for e in etc if e.startswith(pre)]


def assert_gone(block: int, sshds: list[NodeSshd]) -> None:
    assert names_left(block) == []
    assert not [s.pid for s in sshds if pid_alive(s.pid)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with block_lock(BLOCK):
        base = tmp_path_factory.mktemp("netns")
        net, nodes, sshds, key = build(BLOCK, base)
        pool = SshPool(base / "known_hosts", connect_timeout=5)
        try:
            yield net, nodes, sshds, key, pool, base
        finally:
            pool.close()
            net.remove()
            assert_gone(BLOCK, sshds)


def target(sshd: NodeSshd, key: Path) -> SshTarget:
    return SshTarget(sshd.node.address, sshd.port, "root", key_path=key,
                     host_key_fingerprint=sshd.host_key_fingerprint)


def test_nodes_have_lab_addresses_and_no_default_route(lab):
    net, nodes, sshds, *_ = lab
    assert net.gateway == f"198.18.{BLOCK}.1" and net.subnet == f"198.18.{BLOCK}.0/24"
    assert [n.address for n in nodes] == [f"198.18.{BLOCK}.11", f"198.18.{BLOCK}.12"]
    for node in nodes:
        assert ipaddress.ip_address(node.address) in LAB_RANGE
        assert node.gateway == net.gateway
        assert node.node_root.is_dir() and node.node_root.stat().st_mode & 0o777 == 0o700
        routes = subprocess.run(["ip", "-n", node.netns, "route"], capture_output=True,
                                text=True, check=True).stdout
        assert "default" not in routes
        assert routes.split()[:3] == [net.subnet, "dev", "eth0"]
    assert all(len(name) <= 15 for name in names_left(BLOCK) if not name.startswith("/"))


def test_ssh_into_each_node_with_the_products_client(lab):
    net, nodes, sshds, key, pool, _ = lab
    for node, sshd in zip(nodes, sshds):
        assert sshd.host_key_fingerprint.startswith("SHA256:")
        node_ssh = pool.transport(target(sshd, key))
        release = node_ssh.run(["cat", "/etc/os-release"])
        assert release.exit_status == 0, release.stderr
        assert 'PRETTY_NAME="CentOS Linux 7.4 (skylift lab namespace)"' in release.stdout
        assert 'VERSION_ID="7.4"' in release.stdout and 'ID="centos"' in release.stdout
        route = node_ssh.run(["ip", "route"]).stdout
        assert "default" not in route and f"src {node.address}" in route
        assert node_ssh.run(["hostname", "-I"]).stdout.split() == [node.address]
    # the root namespace's os-release is untouched
    assert "skylift lab namespace" not in Path("/etc/os-release").read_text()


def test_reachability_root_to_node_node_to_node_and_nothing_beyond(lab):
    net, nodes, sshds, *_ = lab
    for sshd in sshds:  # root namespace -> each node's sshd, over the bridge
        socket.create_connection((sshd.node.address, sshd.port), timeout=2).close()
    probe = ("import socket,sys\n"
             "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)"
             ".close(); print('ok')\n"
             "except OSError as e: print(e.errno)\n")
    one, two = nodes

    def dial(node, address, port):
        return net.run(node, [sys.executable, "-c", probe, address, str(port)],
                       capture_output=True, text=True, check=True).stdout.strip()

    assert dial(one, two.address, 22) == "ok"
    assert dial(two, one.address, 22) == "ok"
    # without a default route, anything outside the lab's /24 is unreachable at once
    assert dial(one, "192.0.2.1", 22) == "101"   # ENETUNREACH (TEST-NET-1, never reached)


def test_known_hosts_line_works_for_openssh_and_a_wrong_key_is_refused(lab, tmp_path):
    net, nodes, sshds, key, pool, _ = lab
    sshd = sshds[0]
    line = known_hosts_line(sshd)
    assert line.startswith(f"{sshd.node.address} ssh-ed25519 AAAA")
    kh = tmp_path / "known_hosts"
    kh.write_text(line + "\n")
    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    base = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={kh}", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=5"]
    good = subprocess.run([*base, "-i", str(key), f"root@{sshd.node.address}", "echo", "in"],
                          capture_output=True, text=True, timeout=20)
    assert (good.returncode, good.stdout.strip()) == (0, "in"), good.stderr
    bad = subprocess.run([*base, "-i", str(wrong), f"root@{sshd.node.address}", "true"],
                         capture_output=True, text=True, timeout=20)
    assert bad.returncode == 255 and "Permission denied (publickey)" in bad.stderr
    # the product's client says so in its own words (a pool of its own: a pool keeps one
    # connection per host, port and user, already logged in with the right key)
    other = SshPool(tmp_path / "known_hosts2", connect_timeout=5)
    try:
        with pytest.raises(NodeLoginRefused):
            other.transport(target(sshd, wrong)).run(["true"])
    finally:
        other.close()
    assert "Failed publickey for root" in sshd.log.read_text()


def test_stop_sshd_stops_only_that_node(lab):
    net, nodes, sshds, key, pool, base = lab
    extra = start_sshd(net, nodes[1], authorized_keys=Path(f"{key}.pub"), port=2222)
    assert extra.host_key_fingerprint == sshds[1].host_key_fingerprint  # the node's own key
    assert known_hosts_line(extra).startswith(f"[{nodes[1].address}]:2222 ssh-ed25519 ")
    again = NodeSshd.from_dict(json.loads(json.dumps(extra.to_dict())))  # as lab.json keeps it
    assert again == extra and known_hosts_line(again) == known_hosts_line(extra)
    stop_sshd(again)
    stop_sshd(extra)  # harmless to repeat
    assert not pid_alive(extra.pid) and pid_alive(sshds[1].pid)


def test_create_refuses_bad_input_before_any_change(tmp_path):
    net = LabNetwork(CRASH_BLOCK, tmp_path)
    with pytest.raises(UsageError):
        net.create(["host-1", "host-1"])
    with pytest.raises(UsageError):
        net.create(["../etc"])
    with pytest.raises(UsageError):
        net.create(["host-1"], os_release="u2204")
    with pytest.raises(UsageError):
        LabNetwork(100, tmp_path)
    with block_lock(CRASH_BLOCK):
        assert names_left(CRASH_BLOCK) == []


def test_remove_and_a_crashed_lab_leave_nothing(tmp_path):
    with block_lock(CRASH_BLOCK):
        net, nodes, sshds, key = build(CRASH_BLOCK, tmp_path / "live")
        sleeper = net.popen(nodes[0], ["sleep", "600"], start_new_session=True)
        started = time.monotonic()
        removed = net.remove()
        print(f"remove: {(time.monotonic() - started) * 1000:.0f} ms")
        assert set(removed["namespaces"]) == {n.netns for n in nodes}
        assert sleeper.pid in removed["killed"] and sshds[0].pid in removed["killed"]
        assert_gone(CRASH_BLOCK, sshds)
        assert net.remove()["namespaces"] == []  # idempotent

        # a crashed lab: built, its Python objects and state gone; only the block is known
        sshds = build(CRASH_BLOCK, tmp_path / "crashed")[2]  # the LabNetwork is dropped
        pids = [s.pid for s in sshds]
        removed = remove_lab_network(CRASH_BLOCK)
        assert len(removed["namespaces"]) == 2 and set(pids) <= set(removed["killed"])
        assert removed["bridges"] == [netns.bridge_name(CRASH_BLOCK)]
        assert_gone(CRASH_BLOCK, sshds)
