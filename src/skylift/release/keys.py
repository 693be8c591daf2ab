"""Ed25519 release keys: make a pair, load the private key to sign, load the trusted public keys.

A trusted key is named in config.toml (`trusted_keys`), either as the path of a PEM public key
(absolute, or relative to $SKYLIFT_HOME) or inline as `ed25519:<base64 of the 32 raw bytes>`.
"""

from __future__ import annotations

import base64
import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from skylift.config import skylift_home
from skylift.errors import ArtefactError, ConfigError, Refused
from skylift.files import PUBLIC, write_atomic

PRIVATE_NAME = "skylift-release.key"
PUBLIC_NAME = "skylift-release.pub"


def default_key_dir() -> Path:
    """Where keygen writes and build looks for the signing key by default."""
    return skylift_home() / "keys"


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def inline_form(public: Ed25519PublicKey) -> str:
    """The `ed25519:<base64>` form of a public key, for config.toml."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class KeyPair:
    """Where keygen wrote a pair, and how to trust it."""

    private_path: Path
    public_path: Path
    key_id: str
    inline: str


def generate_keypair(out_dir: Path | None = None) -> KeyPair:
    """Make an Ed25519 pair in out_dir (private key mode 0600); never overwrite an existing key."""
    out = Path(out_dir) if out_dir else default_key_dir()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    priv_path, pub_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if priv_path.exists() or pub_path.exists():
        raise Refused(
            f"a release key already exists in {out}",
            why="overwriting it would orphan every artefact signed with it",
            next="choose another folder with --out, or move the old pair away first",
        )
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    # 0600 from the start (never readable by others, not even briefly), whole or absent, and
    # never over a key that appeared meanwhile
    write_atomic(priv_path, pem, exclusive=True)
    public = private.public_key()
    write_atomic(pub_path, public.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo),
                 mode=PUBLIC, exclusive=True)
    return KeyPair(priv_path, pub_path, key_id(public), inline_form(public))


def load_private_key(path: Path | None) -> Ed25519PrivateKey:
    """The signing key at path (default: the keygen folder); refused if missing or readable by others."""
    path = Path(path) if path else default_key_dir() / PRIVATE_NAME
    if not path.exists():
        raise Refused(
            f"no signing key at {path}",
            why="every artefact is signed with an Ed25519 key",
            next="run `skylift release keygen` or pass --key FILE",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise Refused(
            f"the signing key {path} is readable by others (mode {mode:04o})",
            why="a private key must be mode 0600",
            next=f"chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise Refused(f"cannot read the signing key {path}", why=str(exc),
                      next="give an unencrypted Ed25519 PEM key made by `skylift release keygen`"
                      ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise Refused(f"{path} is not an Ed25519 key", next="make one with `skylift release keygen`")
    return key


def parse_public_key(spec: str) -> Ed25519PublicKey:
    """One trusted-key entry: `ed25519:<base64>` or the path of a PEM public key."""
    try:
        if spec.startswith("ed25519:"):
            return Ed25519PublicKey.from_public_bytes(base64.b64decode(spec[8:], validate=True))
        path = Path(spec).expanduser()
        if not path.is_absolute():
            path = skylift_home() / path
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot load the trusted key {spec!r}",
            why=getattr(exc, "strerror", None) or str(exc),
            next="fix trusted_keys in config.toml (a PEM file path or ed25519:<base64>)",
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"the trusted key {spec!r} is not an Ed25519 key",
                          next="use the .pub file written by `skylift release keygen`")
    return key


def trusted_keys(specs: list[str]) -> dict[str, Ed25519PublicKey]:
    """The trusted public keys by key id; refused when none is configured."""
    if not specs:
        raise ArtefactError(
            "no trusted release keys are configured",
            why="an artefact is only accepted when signed by a key this installation trusts",
            next="add the release's public key to trusted_keys in "
                 f"{skylift_home() / 'config.toml'}",
        )
    keys = {}
    for spec in specs:
        key = parse_public_key(spec)
        keys[key_id(key)] = key
    return keys
