"""Sweep what killed lab runs left in the kernel: every lab's nftables table and every lab
block's namespaces, veths, bridge and the processes inside them.

Processes die with the run that started them, but these outlive it: a later run on the same
machine would find its hosts cut off (connections hang until their timeout) or its namespace
names taken. For a machine where no lab is wanted any more, such as the start of a test run
that holds the test lock (scripts/test.sh):

    python -m skylift.lab.sweep
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from skylift.lab.cutoff import remove_every_lab_table
from skylift.lab.errors import LabError
from skylift.lab.netns import lab_blocks_present, remove_lab_network


def sweep() -> dict:
    """Remove every lab table and lab network on this machine; what was removed, and under
    "errors" what could not be (the rest is swept all the same)."""
    errors: list[str] = []
    tables: list[str] = []
    networks: list[dict] = []
    try:
        tables = remove_every_lab_table() if shutil.which("nft") else []
    except LabError as exc:
        errors.append(exc.what)
    try:
        blocks = lab_blocks_present()
    except LabError as exc:
        errors.append(exc.what)
        blocks = []
    for block in blocks:
        try:
            networks.append(remove_lab_network(block))
        except LabError as exc:
            errors.append(exc.what)
    out = {"nft_tables": tables,
           "lab_blocks": [n["block"] for n in networks],
           "namespaces": [ns for n in networks for ns in n["namespaces"]],
           "killed": [pid for n in networks for pid in n["killed"]]}
    return {**out, "errors": errors} if errors else out


def main(argv: list[str] | None = None) -> int:
    """Sweep, and print what was swept as one JSON document; a usage mistake sweeps nothing
    and exits 2 (argparse)."""
    parser = argparse.ArgumentParser(
        prog="python -m skylift.lab.sweep",
        description="Remove every lab's nftables table, namespaces, veths, bridge and the "
                    "processes in them; print what was removed as JSON. It takes no arguments.")
    parser.parse_args(argv)
    print(json.dumps(sweep()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
