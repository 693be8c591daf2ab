#!/usr/bin/env python3
"""Benchmark: verifying a large artefact vs `sha256sum` + `md5sum` on the same file.

Builds a signed OS-image-shaped artefact of --size-mib MiB (one big package), then times, on a
warm page cache, the full skylift verification (signature, size, MD5 and SHA-256 in one pass,
manifest) and the two coreutils tools an operator would otherwise run one after the other.
Prints a table; the goal is verify <= 1.2 x (sha256sum + md5sum).

    python3 bench/verify.py [--size-mib 1024] [--repeat 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from skylift.release import manifest as mf
from skylift.release.archive import manifest_bytes
from skylift.release.build import seal_artefact
from skylift.release.keys import generate_keypair, load_private_key, trusted_keys
from skylift.release.verify import verify_artefacts

BLOCK = 8 * 1024 * 1024


class _Filler(io.RawIOBase):
    """size bytes of a repeated random block, read without holding them all in memory."""

    def __init__(self, size: int) -> None:
        self.left, self.block = size, os.urandom(BLOCK)

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left, BLOCK)
        buf[:n] = self.block[:n]
        self.left -= n
        return n


def make_artefact(folder: Path, size: int) -> tuple[Path, dict]:
    """A signed OS image holding one package of `size` bytes; returns it and the trusted keys."""
    pair = generate_keypair(folder / "keys")
    name = "packages/big-1.0.c76.pkg"
    path = folder / mf.artefact_name(mf.OS_IMAGE, "4.3.12", "c76")
    manifest = mf.OSImageManifest(kind=mf.OS_IMAGE, release="4.3.12", os="c76",
                                  repo_version="4.3.12", code_version="4.3.12", files=[name])
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        data = manifest_bytes(manifest.model_dump())
        info = tarfile.TarInfo(mf.MANIFEST_NAME)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(name)
        info.size = size
        tar.addfile(info, io.BufferedReader(_Filler(size), BLOCK))
    seal_artefact(path, mf.OS_IMAGE, "4.3.12", "c76", load_private_key(pair.private_path))
    return path, trusted_keys([str(pair.public_path)])


def best(times: list[float]) -> float:
    return min(times)


def time_cmd(cmd: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="where to write the artefact")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        os.environ["SKYLIFT_HOME"] = str(Path(tmp) / "home")
        path, keys = make_artefact(Path(tmp), args.size_mib * 1024 * 1024)
        size_mib = path.stat().st_size / 2**20
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # warm cache
        verify_t = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            verify_artefacts([path], keys)
            verify_t.append(time.perf_counter() - t)
        sha_t = time_cmd(["sha256sum", str(path)], args.repeat)
        md5_t = time_cmd(["md5sum", str(path)], args.repeat)
    v, s, m = best(verify_t), best(sha_t), best(md5_t)
    print(f"artefact: {size_mib:.0f} MiB, best of {args.repeat}, warm page cache; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")
    print()
    print("| what | seconds | MiB/s |")
    print("|---|---:|---:|")
    for label, sec in (("sha256sum", s), ("md5sum", m), ("sha256sum + md5sum", s + m),
                       ("skylift verify (signature, size, MD5+SHA-256 one pass, manifest)", v)):
        print(f"| {label} | {sec:.3f} | {size_mib / sec:.0f} |")
    ratio = v / (s + m)
    print(f"| **ratio verify / (sha256sum + md5sum)** | **{ratio:.2f}** | goal <= 1.20 |")


if __name__ == "__main__":
    main()
