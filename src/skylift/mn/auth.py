"""The admin token: made at the MN's first start, kept in $SKYLIFT_HOME/mn/admin-token (0600).

Clients send it as `Authorization: Bearer <token>`. It is never logged or put in an error.
The file is the credential: `rotate_token` replaces it atomically, and every MN serving this
state folder notices the new file on its next request (AdminToken), so the old token stops
working at once without a restart. Accounts' tokens live in the database (skylift.mn.tokens).
"""

from __future__ import annotations

import hmac
import os
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


def bearer(header: str | None) -> str | None:
    """The token an Authorization header carries (None without a Bearer one)."""
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip() or None


def token_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries the token (constant-time compare)."""
    sent = bearer(header)
    return sent is not None and hmac.compare_digest(sent.encode(), token.encode())


def rotate_token(path: Path | None = None) -> Path:
    """Replace the admin token with a new one (atomically, 0600); the old one stops working.

    Answers the file's path, never the token: whoever may read the file reads it there.
    """
    path = path or token_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, (secrets.token_urlsafe(32) + "\n").encode())
    return path


class AdminToken:
    """The admin token as the file holds it now, read again only when the file changes.

    One stat per call that carries a token; a rotated file (a new inode) is read at once.
    A missing or unreadable file accepts no admin token at all rather than an old one.
    """

    def __init__(self, path: Path | None, token: str) -> None:
        self.path = path
        self._token: str | None = token
        self._seen: tuple[int, int, int] | None = None
        if path is not None:
            self.current()

    def current(self) -> str | None:
        """The admin token now (None when the file is gone)."""
        if self.path is None:
            return self._token
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            try:
                self._token = read_token(self.path) or None
            except OSError:
                return None
            self._seen = seen
        return self._token

    def matches(self, header: str | None) -> bool:
        """Whether an Authorization header carries the admin token."""
        token = self.current()
        return token is not None and token_matches(header, token)
