"""Sweep what killed lab runs left in the kernel: every lab's nftables table and every lab
block's namespaces, veths, bridge and the processes inside them.

Processes die with the run that started them, but these outlive it: a later run on the same
machine would find its hosts cut off (connections hang until their timeout) or its namespace
names taken. For a machine where no lab is wanted any more, such as the start of a test run
that holds the test lock (scripts/test.sh):

    python -m skylift.lab.sweep
"""

from __future__ import annotations

import json
import shutil

from skylift.lab.cutoff import remove_every_lab_table
from skylift.lab.netns import lab_blocks_present, remove_lab_network


def sweep() -> dict:
    """Remove every lab table and lab network on this machine; what was removed."""
    tables = remove_every_lab_table() if shutil.which("nft") else []
    networks = [remove_lab_network(block) for block in lab_blocks_present()]
    return {"nft_tables": tables,
            "lab_blocks": [n["block"] for n in networks],
            "namespaces": [ns for n in networks for ns in n["namespaces"]],
            "killed": [pid for n in networks for pid in n["killed"]]}


if __name__ == "__main__":
    print(json.dumps(sweep()))
