"""The multi-MN upgrade of the lab's HA cloud, as an operator runs it: `skylift upgrade ...`
on the MN node that holds the VIP (inside its namespace, with that MN's state folder), the
database password in the environment, the artefacts of the newest release built and signed
with the lab's release key (which every MN of the lab trusts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from skylift.lab import ha_lab
from skylift.lab.artefacts import build_for_upgrade
from skylift.lab.errors import LabError
from skylift.lineage import NEWEST
from skylift.release.manifest import HA_SUITE, artefact_name


def artefact_args(state: dict, release: str = NEWEST.version) -> list[str]:
    """`--image … --installer … --tool … --ha-suite …` of the release (run adds --offline)."""
    home = Path(state["ha"]["mns"][0]["home"])
    arts = build_for_upgrade(home, release=release, os_release=state.get("os_release", "c74"))
    suite = arts.image.with_name(artefact_name(HA_SUITE, release))
    return ["--image", str(arts.image), "--installer", str(arts.installer),
            "--tool", str(arts.tool), "--ha-suite", str(suite)]


def mn_entry(state: dict, name: str | None = None) -> dict:
    """The MN entry of that name, else of the VIP holder now."""
    if name is None:
        m = ha_lab.holder(state)
        if m is None:
            raise LabError(f"no MN node of lab '{state['name']}' holds the VIP now",
                           next="`skylift lab status` shows the HA cloud")
        return m
    return ha_lab._entry(state, name)


def skylift_on(state: dict, name: str | None, args: list[str], *, timeout: float = 1800,
               popen: bool = False, env: dict | None = None):
    """`skylift ARGS` on an MN node (default: the VIP holder's), as root there would run it."""
    m = mn_entry(state, name)
    galera = ha_lab.galera_of(state)
    child = {**os.environ, "SKYLIFT_HOME": m["home"], "SKYLIFT_DB_PASSWORD": galera.password(),
             **(env or {})}
    argv = ["ip", "netns", "exec", m["node"]["netns"], sys.executable, "-m", "skylift.cli.main", *args]
    if popen:
        return subprocess.Popen(argv, env=child, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    return subprocess.run(argv, env=child, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
