"""Declarative base and column shapes shared by the models of the newest release."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Base of every model of release 4.3.12 (the schema the Alembic chain ends at)."""


def uuid_pk() -> Mapped[str]:
    return mapped_column(sa.String(32), primary_key=True)


def ref(target: str | None = None, *, nullable: bool = False, index: bool = False,
        primary_key: bool = False):
    """A uuid reference; a foreign key when the target table is named."""
    args = [sa.ForeignKey(f"{target}.uuid")] if target else []
    return mapped_column(sa.String(32), *args, nullable=nullable, index=index,
                         primary_key=primary_key)


def name_col() -> Mapped[str]:
    return mapped_column(sa.String(255))


def state_col() -> Mapped[str]:
    return mapped_column(sa.String(32))


def created_col() -> Mapped[datetime]:
    return mapped_column(sa.DateTime, server_default=sa.func.now())
