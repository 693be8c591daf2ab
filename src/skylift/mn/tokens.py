"""Accounts' API tokens: issued for a time, stored only as their SHA-256, revoked by deleting.

A token is 32 random bytes (URL-safe), shown once when it is issued and never again: the
database keeps its SHA-256 (a slow password hash buys nothing for a random 256-bit secret,
and a lookup by digest is one indexed read). A token of the SystemAdmin account is an admin
token that expires; a token of any other account is that account's (skylift.mn.access).
Core only: the gate reads tokens in any mode, never through the newest models.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid as uuidlib
from dataclasses import dataclass

import sqlalchemy as sa

from skylift.mn.access import Caller

DEFAULT_TTL = dt.timedelta(hours=24)
MAX_TTL = dt.timedelta(days=30)
ADMIN_TYPE = "SystemAdmin"

api_tokens = sa.table("api_tokens", sa.column("uuid"), sa.column("account_uuid"),
                      sa.column("token_hash"), sa.column("created_at", sa.DateTime),
                      sa.column("expires_at", sa.DateTime))
accounts = sa.table("accounts", sa.column("uuid"), sa.column("type"))


def utcnow() -> dt.datetime:
    """Now, in UTC without a zone (how the database's DateTime columns hold times)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def digest(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    """A token just issued: the only moment its secret is known outside the caller's hands."""

    uuid: str
    account_uuid: str
    token: str
    expires_at: dt.datetime

    def to_dict(self) -> dict:
        return {"uuid": self.uuid, "account_uuid": self.account_uuid, "token": self.token,
                "expires_at": self.expires_at.isoformat() + "Z"}


def issue(conn: sa.Connection, account_uuid: str, ttl: dt.timedelta = DEFAULT_TTL) -> Issued:
    """A new token of an account, valid for ttl (at most MAX_TTL)."""
    ttl = min(ttl, MAX_TTL)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    issued = Issued(uuidlib.uuid4().hex, account_uuid, token, now + ttl)
    conn.execute(api_tokens.insert().values(uuid=issued.uuid, account_uuid=account_uuid,
                                            token_hash=digest(token), created_at=now,
                                            expires_at=issued.expires_at))
    return issued


def caller_of_token(conn: sa.Connection, token: str) -> Caller | None:
    """Who a token belongs to, or None when it is unknown, revoked or expired."""
    row = conn.execute(
        sa.select(api_tokens.c.uuid, api_tokens.c.account_uuid, api_tokens.c.expires_at,
                  accounts.c.type)
        .select_from(api_tokens.join(accounts, accounts.c.uuid == api_tokens.c.account_uuid))
        .where(api_tokens.c.token_hash == digest(token))).first()
    if row is None or row.expires_at <= utcnow():
        return None
    return Caller(admin=row.type == ADMIN_TYPE, account_uuid=row.account_uuid,
                  token_uuid=row.uuid)
