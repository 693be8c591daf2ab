"""`skylift release`: make a signing key, build a release's artefacts, verify artefacts."""

from __future__ import annotations

from pathlib import Path

import typer

from skylift.cli.common import JSON_OPTION
from skylift.cli.output import emit_json, info, table
from skylift.config import load_config
from skylift.errors import SkyliftError

app = typer.Typer(help="Release artefacts: build, sign and verify.", no_args_is_help=True)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.command()
def keygen(
    out: Path = typer.Option(None, "--out", help="Folder for the key pair "
                             "(default: $SKYLIFT_HOME/keys)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Make an Ed25519 signing key pair (private key mode 0600)."""
    from skylift.release.keys import generate_keypair

    pair = generate_keypair(out)
    data = {"private_key": str(pair.private_path), "public_key": str(pair.public_path),
            "key_id": pair.key_id, "trusted_key": pair.inline}
    if json_out:
        emit_json(data)
        return
    info(f"key {pair.key_id}: private {pair.private_path} (0600), public {pair.public_path}")
    info(f'to trust it, add to config.toml: trusted_keys = ["{pair.public_path}"]')


@app.command()
def build(
    release: str = typer.Option(..., "--release", help="Release to build, e.g. 4.3.12."),
    os_releases: str = typer.Option(None, "--os", help="Host OS releases, e.g. c74,c76 "
                                    "(default: all the release ships)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    key: Path = typer.Option(None, "--key", help="Private signing key "
                             "(default: $SKYLIFT_HOME/keys/skylift-release.key)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Build, sum and sign the OS images, installer bundle, upgrade tool and HA suite."""
    from skylift.release.build import build_release

    result = build_release(release, out, os_releases=_split(os_releases), key_path=key)
    rows = [{"file": str(a.path), "kind": a.kind, "os": a.os, "size": a.size, "md5": a.md5,
             "sha256": a.sha256} for a in result.artefacts]
    if json_out:
        emit_json({"release": result.release, "key_id": result.key_id, "artefacts": rows})
        return
    table(f"release {result.release} (signed by {result.key_id})",
          ["file", "kind", "os", "size", "sha256"],
          [[Path(r["file"]).name, r["kind"], r["os"] or "", r["size"], r["sha256"][:16]]
           for r in rows])


@app.command()
def verify(
    files: list[Path] = typer.Argument(..., help="Artefact files, or folders holding them."),
    upgrade: str = typer.Option(None, "--upgrade", help="offline or multi-mn: also require "
                                "every artefact that upgrade needs."),
    release: str = typer.Option(None, "--release", help="Release they must be for."),
    os_release: str = typer.Option(None, "--os", help="Hosts' OS release (c72 needs the c74 "
                                   "image)."),
    trusted_key: list[str] = typer.Option(None, "--trusted-key", help="Also trust this public "
                                          "key file (besides trusted_keys in config.toml)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Check sums, signatures, manifests and completeness; change nothing (exit 2 if refused)."""
    from skylift.release.verify import VerificationFailed, verify_artefacts

    keys = load_config().trusted_keys + [str(Path(k).resolve()) for k in trusted_key or []]
    try:
        result = verify_artefacts(files, keys, need=upgrade, release=release, os=os_release)
    except VerificationFailed as exc:
        if json_out:
            emit_json({"ok": False, "failures": [f.to_dict() for f in exc.failures]})
        raise
    except SkyliftError as exc:  # no keys, no files: --json still answers in JSON
        if json_out:
            emit_json({"ok": False, "failures": [], "error": exc.to_dict()})
        raise
    if json_out:
        emit_json(result.to_dict())
        return
    table(f"verified: release {result.release}", ["file", "kind", "os", "md5", "sha256", "key"],
          [[a.path.name, a.kind, a.os or "", a.md5, a.sha256[:16], a.key_id]
           for a in result.artefacts])
