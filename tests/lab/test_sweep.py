"""`python -m skylift.lab.sweep` (scripts/test.sh, under the test lock) removes what killed lab
runs left in the kernel: a lab block's namespaces with the processes in them, its bridge, and
the nftables table that cut a lab's hosts off."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests_support import block_lock

from skylift.lab import cutoff, netns
from skylift.lab.netns import LabNetwork
from skylift.processes import pid_alive

BLOCK = 96  # this test's own lab block


def sweep() -> dict:
    done = subprocess.run([sys.executable, "-m", "skylift.lab.sweep"], capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def test_a_killed_labs_namespaces_processes_and_cut_off_table_are_swept(tmp_path):
    lab = f"sweep{os.getpid()}"
    with block_lock(BLOCK):
        netns.remove_lab_network(BLOCK)
        # what a killed run leaves: its Python objects gone, the kernel's state still there
        net = LabNetwork(BLOCK, tmp_path)
        (node,) = net.create(["host-1"])
        sleeper = net.popen(node, ["sleep", "600"], start_new_session=True)
        cutoff.cut_off(lab, [f"127.{200 + os.getpid() % 50}.9.9"])
        assert BLOCK in netns.lab_blocks_present()

        swept = sweep()

        assert BLOCK in swept["lab_blocks"] and node.netns in swept["namespaces"]
        assert cutoff.table_name(lab) in swept["nft_tables"]
        assert sleeper.pid in swept["killed"]
        sleeper.wait(timeout=10)
        assert not pid_alive(sleeper.pid)
        assert not netns.lab_network_exists(BLOCK)
        assert cutoff.cut_addresses(lab) == set()
        again = sweep()  # nothing of this lab is left to sweep
        assert BLOCK not in again["lab_blocks"]
        assert cutoff.table_name(lab) not in again["nft_tables"]


def test_a_usage_mistake_sweeps_nothing_and_exits_2(tmp_path):
    with block_lock(BLOCK):
        netns.remove_lab_network(BLOCK)
        net = LabNetwork(BLOCK, tmp_path)
        (node,) = net.create(["host-1"])
        try:
            done = subprocess.run([sys.executable, "-m", "skylift.lab.sweep", "--all"],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 2
            assert "usage: python -m skylift.lab.sweep" in done.stderr
            assert "unrecognized arguments: --all" in done.stderr
            assert done.stdout == ""
            assert netns.lab_network_exists(BLOCK)  # nothing was swept
        finally:
            netns.remove_lab_network(BLOCK)
