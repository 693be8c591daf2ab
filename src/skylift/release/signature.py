"""Detached signatures: `<artefact>.sig` holds a signed statement of the artefact's digests.

Ed25519 signs the statement (name, kind, release, OS, size, MD5, SHA-256), not the file itself:
the file is read once to compute both digests, and the signature over its SHA-256 binds it.
The exact signed bytes are stored (base64) so verification never depends on re-serialising JSON.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from skylift.release.keys import key_id
from skylift.release.manifest import Statement

SIG_SUFFIX = ".sig"


def sig_path(artefact: Path) -> Path:
    """The signature file beside an artefact."""
    return artefact.with_name(artefact.name + SIG_SUFFIX)


def sign_statement(statement: Statement, key: Ed25519PrivateKey) -> bytes:
    """The content of a .sig file for this statement."""
    payload = json.dumps(statement.model_dump(), sort_keys=True, separators=(",", ":")).encode()
    doc = {
        "format": 1,
        "algorithm": "ed25519",
        "key_id": key_id(key.public_key()),
        "payload": base64.b64encode(payload).decode(),
        "signature": base64.b64encode(key.sign(payload)).decode(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


_FIELDS = {"format", "algorithm", "key_id", "payload", "signature"}


def _b64(text: str) -> bytes:
    """Decode canonical base64 only (a changed unused bit in the last character is refused)."""
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode() != text:
        raise ValueError("non-canonical base64")
    return data


class SignatureProblem(Exception):
    """Why a signature file is not acceptable (worded for a person, without the file name)."""


@dataclass(frozen=True)
class SignedStatement:
    statement: Statement
    key_id: str


def check_signature(sig_file: Path, trusted: dict[str, Ed25519PublicKey]) -> SignedStatement:
    """The statement of a .sig file, if it is well formed and signed by a trusted key."""
    try:
        raw = sig_file.read_bytes()
    except FileNotFoundError:
        raise SignatureProblem(f"unsigned: its signature file {sig_file.name} is missing") from None
    try:
        doc = json.loads(raw)
        # Strict: every byte of the file must mean something, so any damage to it is refused.
        if set(doc) != _FIELDS or doc["format"] != 1 or doc["algorithm"] != "ed25519":
            raise ValueError("unexpected fields")
        kid = doc["key_id"]
        payload, signature = _b64(doc["payload"]), _b64(doc["signature"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SignatureProblem(f"its signature file {sig_file.name} is damaged "
                               "(not a skylift signature)") from None
    public = trusted.get(kid)
    if public is None:
        raise SignatureProblem(f"signed by an unknown key (key id {kid}); "
                               "this installation does not trust it")
    try:
        public.verify(signature, payload)
    except InvalidSignature:
        raise SignatureProblem(f"bad signature: {sig_file.name} does not match its content "
                               "(the signature file was altered or damaged)") from None
    try:
        statement = Statement.model_validate_json(payload)
    except ValidationError:
        raise SignatureProblem(f"its signature file {sig_file.name} holds no valid statement"
                               ) from None
    return SignedStatement(statement, kid)
