"""`skylift release verify`: every kind of damage is refused, naming the file and the fix."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from release_fixtures import flip_bit, run_cli

from skylift.files import digests
from skylift.release.build import build_release
from skylift.release.keys import generate_keypair
from skylift.release.verify import VerificationFailed, verify_artefacts

IMAGE = "skylift-os-4.3.12-c76.tar"
INSTALLER = "skylift-installer-4.3.12.tar"
TOOL = "skylift-upgrade-4.3.12.pyz"
HA = "skylift-ha-4.3.12.tar"


def test_a_whole_set_verifies_for_both_upgrades(artefacts, trust):
    for upgrade in ("offline", "multi-mn"):
        res = run_cli("release", "verify", artefacts, "--upgrade", upgrade, "--release",
                      "4.3.12", "--json")
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["ok"] and {a["kind"] for a in out["artefacts"]} == {
            "os-image", "installer", "upgrade-tool", "ha-suite"}


def _damage(kind, art, tmp_path):
    """Damage the set in one way; return (args for verify, file the message must name, words)."""
    image = art / IMAGE
    if kind == "flipped-bit":
        flip_bit(image, image.stat().st_size // 2, 3)
        return [art], IMAGE, "digest mismatch"
    if kind == "truncated":
        with open(image, "r+b") as fh:
            fh.truncate(image.stat().st_size - 700)
        return [art], IMAGE, "truncated"
    if kind == "unsigned":
        (art / f"{INSTALLER}.sig").unlink()
        return [art], INSTALLER, "unsigned"
    if kind == "bad-signature":
        sig = json.loads((art / f"{TOOL}.sig").read_text())
        sig["signature"] = sig["signature"][:10] + ("A" if sig["signature"][10] != "A" else "B") \
            + sig["signature"][11:]
        (art / f"{TOOL}.sig").write_text(json.dumps(sig))
        return [art], TOOL, "bad signature"
    if kind == "unknown-key":
        stranger = generate_keypair(tmp_path / "stranger")
        other = tmp_path / "other"
        build_release("4.3.12", other, os_releases=["c76"], key_path=stranger.private_path)
        (art / f"{HA}.sig").write_bytes((other / f"{HA}.sig").read_bytes())
        return [art], HA, "unknown key"
    if kind == "wrong-release":
        return [art / IMAGE, art / INSTALLER, art / TOOL, "--release", "3.7.1"], INSTALLER, \
            "wrong release"
    if kind == "missing-artefact":
        (art / TOOL).unlink()
        return [art], TOOL, "missing artefact"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["flipped-bit", "truncated", "unsigned", "bad-signature",
                                  "unknown-key", "wrong-release", "missing-artefact"])
def test_damage_is_refused_naming_the_file(kind, artefacts, trust, tmp_path):
    args, name, words = _damage(kind, artefacts, tmp_path)
    before = {p.name: p.read_bytes() for p in artefacts.iterdir()}
    res = run_cli("release", "verify", *args, "--upgrade", "offline")
    assert res.returncode == 2, res.stdout + res.stderr
    assert name in res.stderr and words in res.stderr, res.stderr
    assert "again" in res.stderr  # it says what to do
    assert "Traceback" not in res.stderr
    assert {p.name: p.read_bytes() for p in artefacts.iterdir()} == before  # nothing changed


def test_json_lists_each_failure(artefacts, trust):
    flip_bit(artefacts / IMAGE, 10)
    (artefacts / HA).unlink()
    res = run_cli("release", "verify", artefacts, "--upgrade", "multi-mn", "--json")
    assert res.returncode == 2
    failures = {f["file"].split("/")[-1]: f for f in json.loads(res.stdout)["failures"]}
    assert set(failures) == {IMAGE, HA}
    assert "download" in failures[IMAGE]["remedy"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from([IMAGE, INSTALLER, TOOL, HA, f"{IMAGE}.sig", f"{TOOL}.sig"]),
       where=st.floats(min_value=0, max_value=1, exclude_max=True), bit=st.integers(0, 7))
def test_one_flipped_bit_anywhere_is_refused(built, signing, tmp_path_factory, which, where, bit):
    art = tmp_path_factory.mktemp("flip")
    for p in built["4.3.12"].iterdir():
        (art / p.name).write_bytes(p.read_bytes())
    target = art / which
    flip_bit(target, int(where * target.stat().st_size), bit)
    with pytest.raises(VerificationFailed) as err:
        verify_artefacts([art], [str(signing.public_path)], need="multi-mn")
    assert [f.file.split("/")[-1] for f in err.value.failures] == [which.removesuffix(".sig")]


def test_c72_cloud_needs_the_c74_image(artefacts, trust):
    (artefacts / "skylift-os-4.3.12-c74.tar").unlink()
    res = run_cli("release", "verify", artefacts, "--upgrade", "offline", "--os", "c72")
    assert res.returncode == 2
    assert "skylift-os-4.3.12-c74.tar" in res.stderr and "c72 is retired" in res.stderr


def test_no_trusted_key_is_a_refusal(artefacts):
    res = run_cli("release", "verify", artefacts)
    assert res.returncode == 2 and "trusted_keys" in res.stderr


def test_one_pass_digests_equal_the_coreutils_ones(tmp_path):
    data = hashlib.sha256(b"x").digest() * 100_003  # not a multiple of the chunk size
    path = tmp_path / "blob"
    path.write_bytes(data)
    d = digests(path, chunk=65536)
    for tool, value in (("md5sum", d.md5), ("sha256sum", d.sha256)):
        out = subprocess.run([tool, str(path)], capture_output=True, text=True).stdout
        assert out.split()[0] == value
    assert d.size == len(data)


def test_every_single_bit_flip_of_a_signature_file_is_refused(built, signing, tmp_path):
    from skylift.release.keys import trusted_keys
    from skylift.release.signature import SignatureProblem, check_signature

    keys = trusted_keys([str(signing.public_path)])
    raw = (built["4.3.12"] / f"{HA}.sig").read_bytes()
    sig = tmp_path / f"{HA}.sig"
    accepted = []
    for i in range(len(raw)):
        for bit in range(8):
            damaged = bytearray(raw)
            damaged[i] ^= 1 << bit
            sig.write_bytes(bytes(damaged))
            try:
                check_signature(sig, keys)
                accepted.append((i, bit))
            except SignatureProblem:
                pass
    assert accepted == []


def test_the_refusal_counts_files_not_problems():
    from skylift.release.verify import Failure, VerificationFailed

    two_of_one = VerificationFailed([Failure("a.tar", "truncated", "again"),
                                     Failure("/x/a.tar", "wrong release", "again")])
    three = VerificationFailed([Failure(n, "damaged", "again") for n in ("a", "b", "c")])

    assert two_of_one.what.startswith("1 artefact refused (2 problems)")
    assert three.what.startswith("3 artefacts refused;")
