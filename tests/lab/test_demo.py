"""The README's main job: `skylift demo` upgrades a lab cloud and shows nothing was lost."""

import os
import subprocess
import sys


def test_demo_upgrades_a_lab_cloud_and_proves_it(skylift_home):
    out = subprocess.run([sys.executable, "-m", "skylift.cli.main", "demo"],
                         capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                         env=dict(os.environ, COLUMNS="200"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "VM probes lost: 0 of" in out.stdout
    assert "inventory unchanged: True" in out.stdout
    assert "agents on 4.3.12: 3 of 3" in out.stdout
    assert "console assets renamed: True" in out.stdout
    assert "nothing lost" in out.stdout
    # the lab is down afterwards: no process of it is left
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(skylift_home) not in ps
