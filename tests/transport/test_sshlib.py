"""Importing skylift's SSH parts prints nothing: an MN's and an agent's stderr is their log."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_ssh_transport_prints_no_warning():
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c",
         "import skylift.transport.ssh, skylift.transport.known_hosts, skylift.mn.host_add"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stderr == ""
