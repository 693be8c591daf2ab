"""Management-plane tables: global settings, MN heartbeat, local repositories."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from skylift.db.models.base import Base, state_col, uuid_pk


class GlobalSetting(Base):
    """A setting such as ha.enable; the same shape at every revision."""

    __tablename__ = "global_settings"
    category: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    value: Mapped[str | None] = mapped_column(sa.Text)
    default_value: Mapped[str | None] = mapped_column(sa.Text)
    description: Mapped[str | None] = mapped_column(sa.Text)


class MnHeartbeat(Base):
    """A running management node's heartbeat; the same shape at every revision."""

    __tablename__ = "mn_heartbeat"
    uuid: Mapped[str] = uuid_pk()
    hostname: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int] = mapped_column(sa.Integer)
    version: Mapped[str] = mapped_column(sa.String(32))
    state: Mapped[str] = state_col()
    heartbeat_at: Mapped[datetime] = mapped_column(sa.DateTime)


class LocalRepo(Base):
    """The local package repository the MN serves for one host OS release."""

    __tablename__ = "local_repos"
    os_release: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    path: Mapped[str] = mapped_column(sa.String(1024))
    version: Mapped[str] = mapped_column(sa.String(32))
    redirect_to: Mapped[str | None] = mapped_column(sa.String(16))
