"""Database helpers of the normal-mode API: sessions, the resource kinds, rows as dicts."""

from __future__ import annotations

import functools
import re
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.orm import Session

from skylift.db.models import Base
from skylift.db.models.identity import AccountResourceRef
from skylift.errors import NoSuchResource, Refused
from skylift.mn.state import MnState

HIDDEN = {"mn_heartbeat"}  # volatile, per process: not part of the inventory
# Columns never served: a secret, or its hash (password_hash, token, secret_key, api_token...)
SECRET_COLUMN = re.compile(r"^(password|token|secret)|_hash$", re.IGNORECASE)


def is_secret(column: str) -> bool:
    """Whether a column holds a secret or its hash (never served by the API)."""
    return bool(SECRET_COLUMN.search(column))


def _kinds() -> dict[str, type]:
    """Resource kind (table name) -> mapped class, for every model with a uuid key."""
    out = {}
    for mapper in Base.registry.mappers:
        table = mapper.local_table
        if "uuid" in table.c and table.c.uuid.primary_key and table.name not in HIDDEN:
            out[table.name] = mapper.class_
    return dict(sorted(out.items()))


KINDS: dict[str, type] = _kinds()


@contextmanager
def session(mn: MnState) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(mn.engine, expire_on_commit=False) as ses, ses.begin():
        yield ses


def new_uuid() -> str:
    return uuidlib.uuid4().hex


@functools.cache
def public_columns(cls: type) -> tuple[str, ...]:
    """A model's column attributes that are not secrets (see is_secret), found once per model:
    a list of 10,000 rows must not inspect the model 10,000 times."""
    return tuple(c.key for c in sa.inspect(cls).column_attrs
                 if not is_secret(c.key) and not any(is_secret(col.name) for col in c.columns))


def as_dict(obj) -> dict:
    """A model instance's columns as a dict, without its secrets (see is_secret)."""
    return {key: getattr(obj, key) for key in public_columns(type(obj))}


def kind_class(kind: str) -> type:
    """The model of a kind, or NoSuchResource naming the known kinds."""
    cls = KINDS.get(kind)
    if cls is None:
        raise NoSuchResource(f"no resource kind '{kind}'",
                             next="GET /v1/inventory lists them: " + ", ".join(KINDS))
    return cls


def get_or_404(ses: Session, cls: type, uuid: str):
    """The row of this model with this uuid, or NoSuchResource."""
    obj = ses.get(cls, uuid)
    if obj is None:
        raise NoSuchResource(f"no {cls.__tablename__} row {uuid}",
                             next=f"list them with GET /v1/{cls.__tablename__}")
    return obj


def dependents(ses: Session, table: str, uuid: str) -> dict[str, int]:
    """Rows of other tables that reference this row through a foreign key, per table."""
    found: dict[str, int] = {}
    for other in Base.metadata.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table.name == table and other.name != table:
                n = ses.execute(sa.select(sa.func.count()).select_from(other)
                                .where(fk.parent == uuid)).scalar_one()
                if n:
                    found[other.name] = found.get(other.name, 0) + n
    return found


def delete_row(ses: Session, cls: type, uuid: str, *, cascade: tuple[str, ...] = ()) -> None:
    """Delete a row; refuses while other rows still use it (link tables in `cascade` go too)."""
    obj = get_or_404(ses, cls, uuid)
    table = cls.__tablename__
    for link in cascade:
        link_table = Base.metadata.tables[link]
        for fk in link_table.foreign_keys:
            if fk.column.table.name == table:
                ses.execute(link_table.delete().where(fk.parent == uuid))
    users = dependents(ses, table, uuid)
    if users:
        listed = ", ".join(f"{n} {t}" for t, n in sorted(users.items()))
        raise Refused(f"{table} {uuid} is still in use", why=f"used by {listed}",
                      next="delete those first")
    # its owner goes with it (no foreign key: one owner table serves every kind)
    ses.execute(sa.delete(AccountResourceRef).where(AccountResourceRef.resource_type == table,
                                                    AccountResourceRef.resource_uuid == uuid))
    ses.delete(obj)


def add_delete_route(router, cls: type, doc: str, *, cascade: tuple[str, ...] = ()) -> None:
    """Register DELETE /<table>/{uuid} on router: delete_row with these link tables."""
    from fastapi import Depends

    from skylift.mn.api import mn_of

    def delete(uuid: str, mn: MnState = Depends(mn_of)) -> dict:
        with session(mn) as ses:
            delete_row(ses, cls, uuid, cascade=cascade)
        return {"deleted": uuid}

    delete.__doc__ = doc
    router.add_api_route(f"/{cls.__tablename__}/{{uuid}}", delete, methods=["DELETE"],
                         name=f"delete_{cls.__tablename__}")
