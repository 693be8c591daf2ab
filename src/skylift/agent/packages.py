"""The package database of a node: which package is installed at which version.

A node root holds `packages.json` (name -> version). It stands in for the RPM database of a
real host: the MN and the upgrade read it through the agent, and install packages into it
(from the local repository) through `install`. Writes are atomic (see store.py). Names and
versions are refused unless spelled as a repository index spells them (skylift.agent.ids):
they are keys of the database only, never paths, and stay so.

Also a tiny command for use over a transport:
    python -m skylift.agent.packages --node-root DIR list
    python -m skylift.agent.packages --node-root DIR install NAME VERSION
"""

from __future__ import annotations

import argparse
import fcntl
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from skylift.agent.ids import check_package
from skylift.agent.store import read_json, write_json
from skylift.errors import SkyliftError

PACKAGES_FILE = "packages.json"
AGENT_PACKAGE = "skylift-agent"
QEMU_PACKAGE = "qemu-kvm"
LIBVIRT_PACKAGE = "libvirt"


def packages_path(node_root: Path) -> Path:
    return Path(node_root) / PACKAGES_FILE


def read_packages(node_root: Path) -> dict[str, str]:
    """Installed packages of the node: name -> version (empty when none are recorded)."""
    return dict(read_json(packages_path(node_root), {}))


def write_packages(node_root: Path, packages: dict[str, str]) -> None:
    """Replace the whole package database atomically."""
    write_json(packages_path(node_root), dict(sorted(packages.items())))


@contextmanager
def _locked(node_root: Path) -> Iterator[None]:
    # read-modify-write from several processes (agent, upgrade tool) must not lose an update
    lock = Path(node_root) / ".packages.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install(node_root: Path, name: str, version: str) -> str | None:
    """Install (or up/downgrade to) name at version; returns the version it replaced, if any."""
    check_package(name, version)
    with _locked(node_root):
        packages = read_packages(node_root)
        previous = packages.get(name)
        packages[name] = version
        write_packages(node_root, packages)
    return previous


def remove(node_root: Path, name: str) -> str | None:
    """Remove a package; returns the version that was installed, if any."""
    check_package(name)
    with _locked(node_root):
        packages = read_packages(node_root)
        previous = packages.pop(name, None)
        write_packages(node_root, packages)
    return previous


def installed_version(node_root: Path, name: str) -> str | None:
    """The installed version of one package, or None."""
    return read_packages(node_root).get(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skylift.agent.packages")
    parser.add_argument("--node-root", required=True, type=Path)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    inst = sub.add_parser("install")
    inst.add_argument("name")
    inst.add_argument("version")
    args = parser.parse_args(argv)
    if args.cmd == "install":
        try:
            previous = install(args.node_root, args.name, args.version)
        except SkyliftError as exc:  # a bad name or version: said in words, exit 2
            print(exc.render(), file=sys.stderr)
            return exc.exit_code
        print(json.dumps({"name": args.name, "version": args.version, "previous": previous}))
    else:
        print(json.dumps(read_packages(args.node_root), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
