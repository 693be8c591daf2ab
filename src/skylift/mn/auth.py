"""The admin token: made at the MN's first start, kept in $SKYLIFT_HOME/mn/admin-token (0600).

Clients send it as `Authorization: Bearer <token>`. It is never logged or put in an error.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from skylift.config import skylift_home
from skylift.files import write_atomic

TOKEN_NAME = "admin-token"


def token_path(home: Path | None = None) -> Path:
    """Where the admin token lives."""
    return (home or skylift_home()) / "mn" / TOKEN_NAME


def ensure_token(path: Path | None = None) -> str:
    """The admin token, created (mode 0600) unless one exists."""
    path = path or token_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    try:
        # whole or absent: an MN starting beside this one never reads a half-written token
        write_atomic(path, (token + "\n").encode(), exclusive=True)
    except FileExistsError:
        return read_token(path)
    return token


def read_token(path: Path | None = None) -> str:
    """The admin token stored at path (default: this state folder's)."""
    return (path or token_path()).read_text().strip()


def bearer_headers(token: str | None) -> dict[str, str]:
    """The headers that carry the admin token to an MN (none for the open routes)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def token_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the token (constant-time compare)."""
    if not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())
