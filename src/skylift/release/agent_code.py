"""The two code packages of an OS image: skylift-agent (the product code) and
python3-agent-deps (the installed distributions the agent needs), as zips a node unpacks.

skylift-agent holds the skylift product code (wheel.package_files(): no lab) plus a stamp
`skylift/agent_build.json` naming the release, so an agent run from it reports that release.
python3-agent-deps holds what `python -m skylift.agent serve` imports, and the closure of their
requirements, so a node needs python3 and nothing from the network.

Both are deterministic (fixed times, sorted entries): the same code and environment give the
same bytes. The deps zip is tens of megabytes and tests build release images many times, so
it is cached in this process and on disk, keyed by the installed distributions it is made from.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from skylift.codebase import STAMP, code_digest
from skylift.files import write_atomic
from skylift.release.wheel import _zip, package_files

# never shipped to a node: skylift is the other package; the rest build or test, never run it
EXCLUDED_DISTS = {"skylift", "pip", "setuptools", "wheel", "pytest", "pluggy", "iniconfig",
                  "hypothesis", "schemathesis", "pytest-timeout", "coverage"}
# What the agent process imports: its server and CLI, every module of the agent part (the
# hypervisor daemons and VM processes it starts run from the same code), and the uvicorn
# implementations "auto" resolves to at run time (imported late, so named here).
PROBE_MODULES = ("skylift.agent.server", "skylift.agent.app", "skylift.agent.client",
                 "skylift.cli.agent", "skylift.cli.entry", "uvicorn.loops.auto",
                 "uvicorn.protocols.http.auto", "uvicorn.protocols.websockets.auto",
                 "uvicorn.lifespan.on", "uvicorn.loops.uvloop",
                 "uvicorn.protocols.http.httptools_impl", "uvicorn.protocols.http.h11_impl")
_PROBE = """
import importlib, json, pkgutil, sys
import skylift.agent
names = list(sys.argv[1:])
names += [m.name for m in pkgutil.walk_packages(skylift.agent.__path__, "skylift.agent.")]
for name in names:
    try:
        importlib.import_module(name)
    except ImportError:  # an optional implementation that is not installed (uvloop ...)
        pass
print(json.dumps(sorted({m.split(".")[0] for m in list(sys.modules)})))
"""
_EXTRA = re.compile(r"\bextra\s*==")


@lru_cache(maxsize=None)
def agent_package_bytes(release: str) -> bytes:
    """The skylift-agent package of a release: the product code and its release stamp."""
    stamp = (json.dumps({"release": release}, sort_keys=True) + "\n").encode()
    entries = sorted([*package_files(), (STAMP, stamp)])
    return _zip(entries)


def code_digest_of_package(data: bytes | Path) -> str:
    """The code digest (skylift.agent.code) of the code in an agent package zip."""
    raw = Path(data).read_bytes() if isinstance(data, Path) else data
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        files = [(info.filename, zf.read(info)) for info in zf.infolist() if not info.is_dir()]
    return code_digest(files)


def _probe_imports() -> set[str]:
    """Top-level names the agent process imports (a fresh interpreter, this environment)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *PROBE_MODULES], capture_output=True,
                          text=True, timeout=120, cwd="/")
    if done.returncode:
        raise RuntimeError(f"cannot list the agent's imports: {done.stderr.strip()[-500:]}")
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed() -> dict[str, metadata.Distribution]:
    out: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        out.setdefault(_norm(dist.metadata["Name"]), dist)  # first on sys.path wins, as import
    return out


@lru_cache(maxsize=1)
def agent_dists() -> tuple[metadata.Distribution, ...]:
    """The installed distributions the agent needs: those its imports come from, and their
    requirements' closure (requirements of an extra left out; only what is installed)."""
    installed = _installed()
    by_top = metadata.packages_distributions()
    wanted = {_norm(d) for top in _probe_imports() for d in by_top.get(top, [])}
    todo, seen = sorted(wanted), set()
    while todo:
        name = todo.pop()
        if name in seen or name in EXCLUDED_DISTS or name not in installed:
            continue
        seen.add(name)
        for req in installed[name].requires or []:
            if _EXTRA.search(req):
                continue
            todo.append(_norm(re.split(r"[\s;<>=!~\[(]", req.strip(), maxsplit=1)[0]))
    return tuple(installed[n] for n in sorted(seen))


def _dist_entries(dist: metadata.Distribution) -> list[tuple[str, bytes]]:
    """(name relative to site-packages, content) of one distribution's files; caches and what
    lies outside site-packages (console scripts) are left out."""
    base = Path(dist.locate_file("")).resolve()
    out = []
    for file in dist.files or []:
        rel = file.as_posix()
        parts = rel.split("/")
        if ".." in parts or rel.startswith("/") or "__pycache__" in parts \
                or rel.endswith((".pyc", ".pyo")):
            continue
        path = base / rel
        if path.is_file():
            out.append((rel, path.read_bytes()))
    return out


def deps_key() -> str:
    """What the deps zip is made of: the sorted name==version of its distributions."""
    return "\n".join(sorted(f"{_norm(d.metadata['Name'])}=={d.version}" for d in agent_dists()))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "skylift"


@lru_cache(maxsize=1)
def agent_deps_bytes() -> bytes:
    """The python3-agent-deps package: a zip of every distribution the agent needs, unpacked
    beside the code on a node (PYTHONPATH), so the agent runs without the network."""
    # keyed by every installed distribution, the code whose imports are probed and the probe,
    # not by the closure: the key costs no interpreter start, and any change still misses
    everything = sorted(f"{_norm(d.metadata['Name'])}=={d.version}"
                        for d in metadata.distributions())
    code = hashlib.sha256(b"".join(hashlib.sha256(data).digest()
                                   for _, data in package_files())).hexdigest()
    key = hashlib.sha256("\n".join([sys.implementation.cache_tag, code, _PROBE,
                                     *PROBE_MODULES, *everything]).encode()).hexdigest()
    cached = _cache_dir() / f"agent-deps-{key[:32]}.zip"
    try:
        return cached.read_bytes()
    except OSError:
        pass
    entries: dict[str, bytes] = {}
    for dist in agent_dists():
        entries.update(_dist_entries(dist))
    data = _zip(sorted(entries.items()), compresslevel=1)
    try:  # a cache only: a read-only home just means building again next time
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, data, mode=0o644, durable=False)
        for old in cached.parent.glob("agent-deps-*.zip"):  # one per environment, not per edit
            if old != cached:
                old.unlink(missing_ok=True)
    except OSError:
        pass
    return data
