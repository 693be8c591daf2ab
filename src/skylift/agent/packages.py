"""The package database of a node: which package is installed at which version.

A node root holds `packages.json` (name -> version). It stands in for the RPM database of a
real host: the MN and the upgrade read it through the agent, and install packages into it
(from the local repository) through `install`. Writes are atomic (see store.py). Names and
versions are refused unless spelled as a repository index spells them (skylift.agent.ids):
they are keys of the database only, never paths, and stay so.

The two code packages (skylift-agent, python3-agent-deps) are real: installing one from its
file unpacks it into the node's versioned code folder (code_install.py) before it is recorded;
without --file the file is downloaded from the node's repository (NODE_ROOT/repo.json, written
by the bootstrap) when there is one. A node with neither only records the version, as the
lab's loopback development nodes and the host farm do.

Also a tiny command for use over a transport:
    python -m skylift.agent.packages --node-root DIR list
    python -m skylift.agent.packages --node-root DIR install NAME VERSION [--file F] [--sha256 H]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import ssl
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from skylift.agent import code_install
from skylift.agent.ids import check_package
from skylift.agent.store import read_json, write_json
from skylift.errors import (NoSuchPackage, PackageDigestMismatch, Refused, SkyliftError,
                            TransportError)
from skylift.files import write_atomic

REPO_FILE = "repo.json"  # {"url": "https://host:port/repo", "os": "c74", "ca": "/path/ca.pem"}
CACHE_DIR = "cache"

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


def _get(url: str, ca: str | None, timeout: float = 60.0):
    # the repository is the MN's HTTPS server, verified against the CA the bootstrap was given
    context = ssl.create_default_context(cafile=ca) if url.startswith("https:") else None
    return urllib.request.urlopen(url, timeout=timeout, context=context)


def download(node_root: Path, name: str, version: str) -> tuple[Path, str]:
    """Download a package of the node's repository into NODE_ROOT/cache/; (file, sha256).

    Its size and SHA-256 are checked against the repository's index before it is used."""
    repo = read_json(Path(node_root) / REPO_FILE, {})
    base, os_release, ca = repo.get("url", "").rstrip("/"), repo.get("os", ""), repo.get("ca")
    where = f"{base}/{os_release}"
    try:
        with _get(f"{where}/repodata/index.json", ca) as resp:
            index = json.loads(resp.read())
        pkg = next((p for p in index.get("packages", [])
                    if p.get("name") == name and p.get("version") == version), None)
        if pkg is None:
            raise NoSuchPackage(f"the node's repository has no {name} {version}", why=f"{where} "
                          "does not list it", next="update the MN's repository from the "
                          "release's OS image, or install a version it serves")
        check_package(name, version)
        file = str(pkg["file"])
        if "/" in file or file.startswith("."):
            raise Refused(f"the repository names the file of {name} {file!r}",
                          why="a package file is a plain name", next="rebuild the repository")
        cache = Path(node_root) / CACHE_DIR
        cache.mkdir(parents=True, exist_ok=True)
        with _get(f"{where}/packages/{file}", ca) as resp:
            data = resp.read()
    except (OSError, ValueError, KeyError) as exc:  # URLError and ssl errors are OSErrors
        raise TransportError(f"cannot download {name} {version} from {where}", why=str(exc),
                             next="check that the node reaches the MN's repository") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != pkg.get("size") or digest != pkg.get("sha256"):
        raise PackageDigestMismatch(f"the download of {file} is not the repository's package",
                                    why=f"{len(data)} bytes, SHA-256 {digest}; the index says "
                                        f"{pkg.get('size')} bytes, {pkg.get('sha256')}",
                                    next="download it again")
    path = cache / file
    write_atomic(path, data, mode=0o644)
    return path, digest


def install_package(node_root: Path, name: str, version: str, file: Path | None = None,
                    sha256: str | None = None) -> dict:
    """Install a package as a node does: a code package from its file (or from the node's
    repository) into the versioned code folder, then its version into the database.

    Returns {"name", "version", "previous"} and, for an unpacked code package, "code"
    (code_install.install_code's answer). A downloaded package whose SHA-256 is not sha256
    (when given: the MN's own digest of it) is refused before anything is installed."""
    check_package(name, version)
    code = None
    deps = None
    if name in code_install.CODE_PACKAGES:
        if file is None and (Path(node_root) / REPO_FILE).is_file():
            file, got = download(Path(node_root), name, version)
            if sha256 and got != sha256:  # the node's repository is not the MN's
                raise PackageDigestMismatch(
                    f"the node's repository serves another {name} {version} than the MN's",
                    why=f"its SHA-256 is {got}, the MN's repository says {sha256}",
                    next="point the node at the MN's repository (NODE_ROOT/repo.json)")
            sha256 = got
            if name == AGENT_PACKAGE:  # the agent of a release runs on that release's deps
                deps = _deps_of(Path(node_root), version)
        if file is not None:
            code = code_install.install_code(node_root, name, version, Path(file), sha256)
    out = {"name": name, "version": version, "previous": install(node_root, name, version)}
    if code is not None:
        out["code"] = code
    if deps is not None:
        out["deps"] = deps
    return out


def _deps_of(node_root: Path, version: str) -> dict | None:
    """Install the repository's python3-agent-deps of `version` first, when it has one and
    the node does not run it yet (installed before the agent: the new agent needs them)."""
    if installed_version(node_root, code_install.DEPS_PACKAGE) == version:
        return None
    try:
        file, digest = download(node_root, code_install.DEPS_PACKAGE, version)
    except NoSuchPackage:  # a repository without that release's deps: the agent keeps its own
        return None
    code_install.install_code(node_root, code_install.DEPS_PACKAGE, version, file, digest)
    return {"name": code_install.DEPS_PACKAGE, "version": version,
            "previous": install(node_root, code_install.DEPS_PACKAGE, version)}


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
    inst.add_argument("--file", type=Path, help="the package file (a code package is unpacked)")
    inst.add_argument("--sha256", help="refuse the file unless its SHA-256 is this")
    sub.add_parser("switch-back", help="run the agent version installed before (after a "
                   "failed upgrade); restart the agent service to use it")
    args = parser.parse_args(argv)
    if args.cmd == "switch-back":
        try:
            version = code_install.switch_back(args.node_root)
        except SkyliftError as exc:
            print(exc.render(), file=sys.stderr)
            return exc.exit_code
        print(json.dumps({"name": AGENT_PACKAGE, "version": version,
                          "previous": install(args.node_root, AGENT_PACKAGE, version)}))
        return 0
    if args.cmd == "install":
        try:
            done = install_package(args.node_root, args.name, args.version, args.file,
                                   args.sha256)
        except SkyliftError as exc:  # a bad name or version: said in words, exit 2
            print(exc.render(), file=sys.stderr)
            return exc.exit_code
        print(json.dumps(done))
    else:
        print(json.dumps(read_packages(args.node_root), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
