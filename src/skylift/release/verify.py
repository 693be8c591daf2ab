"""Verifying artefacts before use: signature, size, digests, release, manifest, completeness.

Each file is checked in order of cost: its signature (a few hundred bytes), its size (catches
truncation without reading), then MD5 and SHA-256 in one pass, then its members (each a plain
file with a relative name, see release.archive — even in a signed artefact) and its
manifest. Every failure names the file, says what is wrong and what to do; nothing is ever
changed.
The upgrade procedure calls verify_artefacts(); the CLI renders its result.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from skylift.config import config_path
from skylift.errors import ArtefactError, UsageError
from skylift.files import digests
from skylift.release import manifest as mf
from skylift.release.archive import ArchiveProblem, UnsafeMember, read_archive
from skylift.release.keys import trusted_keys as load_trusted
from skylift.release.signature import SIG_SUFFIX, SignatureProblem, check_signature, sig_path

SIDECARS = (SIG_SUFFIX, ".md5", ".sha256")


@dataclass(frozen=True)
class VerifiedArtefact(mf.ArtefactFile):
    """An artefact that passed every check, and the key that signed it."""

    key_id: str
    manifest: dict

    def to_dict(self) -> dict:
        return {"file": str(self.path), "kind": self.kind, "release": self.release,
                "os": self.os, "size": self.size, "md5": self.md5, "sha256": self.sha256,
                "key_id": self.key_id}


@dataclass
class VerifiedSet:
    """The verified artefacts of one release."""

    release: str | None
    artefacts: list[VerifiedArtefact] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[VerifiedArtefact]:
        return [a for a in self.artefacts if a.kind == kind]

    def os_image(self, os: str | None = None) -> VerifiedArtefact | None:
        """The OS image for this host OS release (after the retired-OS redirect), or the only one."""
        images = self.of_kind(mf.OS_IMAGE)
        if os is not None and self.release:
            os = mf.image_os_for(os, self.release)
        for image in images:
            if os is None or image.os == os:
                return image
        return None

    def _one(self, kind: str) -> VerifiedArtefact | None:
        found = self.of_kind(kind)
        return found[0] if found else None

    @property
    def installer(self) -> VerifiedArtefact | None:
        return self._one(mf.INSTALLER)

    @property
    def tool(self) -> VerifiedArtefact | None:
        return self._one(mf.TOOL)

    @property
    def ha_suite(self) -> VerifiedArtefact | None:
        return self._one(mf.HA_SUITE)

    def to_dict(self) -> dict:
        return {"ok": True, "release": self.release,
                "artefacts": [a.to_dict() for a in self.artefacts]}


@dataclass(frozen=True)
class Failure:
    """One refused artefact: which file, what is wrong, what to do."""

    file: str
    problem: str
    remedy: str

    def to_dict(self) -> dict:
        return {"file": self.file, "problem": self.problem, "remedy": self.remedy}


class VerificationFailed(ArtefactError):
    """One or more artefacts were refused; `failures` lists each."""

    def __init__(self, failures: list[Failure]) -> None:
        self.failures = failures
        if len(failures) == 1:
            f = failures[0]
            super().__init__(f"{f.file}: {f.problem}", why="refused before use; nothing was "
                             "changed", next=f.remedy)
        else:
            files = len({Path(f.file).name for f in failures})
            extra = f" ({len(failures)} problems)" if len(failures) != files else ""
            super().__init__(
                f"{files} artefact{'s' if files != 1 else ''} refused{extra}; nothing was "
                "changed",
                why="\n".join(f"  {f.file}: {f.problem}" for f in failures),
                next="\n".join(f"  {f.file}: {f.remedy}" for f in failures),
            )

    def to_dict(self) -> dict:
        return super().to_dict() | {"failures": [f.to_dict() for f in self.failures]}


class _Refuse(Exception):
    def __init__(self, problem: str, remedy: str) -> None:
        super().__init__(problem)
        self.problem, self.remedy = problem, remedy


def expand_paths(paths: list[Path | str]) -> list[Path]:
    """The artefact files named: a folder stands for every artefact in it (sidecars left out)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(c for c in p.iterdir() if c.is_file() and not c.name.startswith(".")
                          and not c.name.endswith(SIDECARS))
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def _again(name: str) -> str:
    return f"download {name} again (with its .sig), then verify again"


def _check_sidecar(path: Path, suffix: str, expected: str) -> None:
    side = path.with_name(path.name + suffix)
    if not side.exists():  # the signature carries both digests; the sum files are a courtesy
        return
    words = side.read_bytes().split()
    if not words or words[0].decode(errors="replace").lower() != expected:
        raise _Refuse(f"its {suffix[1:].upper()} sum file {side.name} does not match it",
                      f"download {side.name} and {path.name} again")


def _check_manifest(path: Path, st: mf.Statement) -> dict:
    try:
        manifest, members = read_archive(path, is_zip=st.kind == mf.TOOL)
    except UnsafeMember as exc:  # signed or not: a signature says who made it, not what it does
        raise _Refuse(str(exc), f"do not unpack {path.name}: get it again from the official "
                      "source, and tell its publisher (a member must be a plain file with a "
                      "relative name)") from None
    except ArchiveProblem as exc:
        raise _Refuse(str(exc), _again(path.name)) from None
    model = mf.MODELS.get(st.kind)
    try:
        parsed = model.model_validate(manifest) if model else None
    except ValidationError as exc:
        missing = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
        raise _Refuse(f"its manifest is incomplete or wrong ({missing})", _again(path.name)
                      ) from None
    if parsed is None or parsed.release != st.release or (
            st.kind == mf.OS_IMAGE and parsed.os != st.os):
        raise _Refuse("its manifest does not match its signature (kind, release or OS)",
                      _again(path.name))
    if set(parsed.files) != set(members):
        lost = sorted(set(parsed.files) - set(members))
        raise _Refuse(f"it lacks files its manifest lists ({', '.join(lost[:3]) or 'extra files'})",
                      _again(path.name))
    if isinstance(parsed, mf.OSImageManifest) and parsed.index not in parsed.files:
        raise _Refuse(f"it holds no repository index ({parsed.index})", _again(path.name))
    return manifest


def verify_artefact(path: Path, trusted: dict[str, Ed25519PublicKey]) -> VerifiedArtefact:
    """Check one artefact; raise _Refuse with the problem and the remedy."""
    if not path.is_file():
        raise _Refuse("missing: no such file", f"download {path.name} and put it there")
    try:
        signed = check_signature(sig_path(path), trusted)
    except SignatureProblem as exc:
        raise _Refuse(str(exc), _again(path.name) if "unknown key" not in str(exc) else
                      "download it from the official source again; if you trust its publisher, "
                      f"add their public key to trusted_keys in {config_path()}") from None
    st = signed.statement
    size = path.stat().st_size
    if size < st.size:
        raise _Refuse(f"truncated: {size} of {st.size} bytes", _again(path.name))
    if size > st.size:
        raise _Refuse(f"has {size - st.size} bytes more than were signed", _again(path.name))
    d = digests(path)
    if d.sha256 != st.sha256 or d.md5 != st.md5:
        raise _Refuse(f"digest mismatch: SHA-256 {d.sha256[:16]}…, signed {st.sha256[:16]}… "
                      "(the file is damaged)", _again(path.name))
    _check_sidecar(path, ".md5", d.md5)
    _check_sidecar(path, ".sha256", d.sha256)
    manifest = _check_manifest(path, st)
    return VerifiedArtefact(path, st.kind, st.release, st.os, d.size, d.md5, d.sha256,
                            signed.key_id, manifest)


def _needed(need: str | None, release: str, os: str | None,
            found: list[VerifiedArtefact], refused: set[str]) -> list[Failure]:
    """Failures for every artefact the chosen upgrade needs and was not given.

    An artefact given but refused (its name is in `refused`) already has its own failure.
    """
    if need is None:
        return []
    if need not in mf.NEEDS:
        raise UsageError(f"unknown upgrade kind {need!r}", next="use offline or multi-mn")
    failures = []
    for kind in mf.NEEDS[need]:
        have = [a for a in found if a.kind == kind]
        if kind == mf.OS_IMAGE and os is not None:
            want_os = mf.image_os_for(os, release)
            if not any(a.os == want_os for a in have):
                name = mf.artefact_name(kind, release, want_os)
                if name in refused:
                    continue
                why = (f"; {os} is retired, its repo is the {want_os} one" if want_os != os else "")
                failures.append(Failure(name, f"missing artefact: the OS image for {want_os}{why}",
                                        f"download {name} (with its .sig) and verify again"))
            continue
        if not have and kind not in {mf.kind_of_name(n, release) for n in refused}:
            name = mf.artefact_name(kind, release, "<os>")
            failures.append(Failure(name, f"missing artefact: {mf.DESCRIPTION[kind]} of {release}",
                                    f"download {name} (with its .sig) and verify again"))
    return failures


def verify_artefacts(paths: list[Path | str], trusted_keys: list[str] | dict,
                     need: str | None = None, release: str | None = None,
                     os: str | None = None) -> VerifiedSet:
    """Verify artefacts and the set an upgrade needs; raise VerificationFailed on any problem.

    trusted_keys: key specs from config (`Config.trusted_keys`) or {key id: public key}.
    need: None (only the files given), "offline" (OS image, installer, tool) or "multi-mn" (+ HA
    suite). release: the release they must be for (default: the installer's, else the majority).
    os: the hosts' OS release, so the right OS image is required (c72 needs the c74 one).
    """
    trusted = trusted_keys if isinstance(trusted_keys, dict) else load_trusted(trusted_keys)
    files = expand_paths(paths)
    if not files:
        raise UsageError("no artefacts given", next="name the artefact files or their folder")
    failures: list[Failure] = []
    found: list[VerifiedArtefact] = []
    for path in files:
        try:
            found.append(verify_artefact(path, trusted))
        except _Refuse as exc:
            failures.append(Failure(str(path), exc.problem, exc.remedy))
    if release is None and found:
        installers = [a.release for a in found if a.kind == mf.INSTALLER]
        release = installers[0] if installers else Counter(
            a.release for a in found).most_common(1)[0][0]
    for art in list(found):
        if art.release != release:
            found.remove(art)
            failures.append(Failure(str(art.path), f"wrong release: it is for {art.release}, "
                                    f"not {release}", f"download the {release} artefact instead"))
    if release is not None:
        failures += _needed(need, release, os, found, {Path(f.file).name for f in failures})
    if failures:
        raise VerificationFailed(failures)
    return VerifiedSet(release, found)
