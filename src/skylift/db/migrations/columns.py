"""Column shapes shared by the revisions (a revision's schema must not depend on the models)."""

import sqlalchemy as sa


def uuid_pk() -> sa.Column:
    return sa.Column("uuid", sa.String(32), primary_key=True)


def ref(name: str, table: str | None = None, *, nullable: bool = False, index: bool = False):
    """A uuid reference column; a foreign key when the target table is named."""
    args = [sa.ForeignKey(f"{table}.uuid")] if table else []
    return sa.Column(name, sa.String(32), *args, nullable=nullable, index=index)


def name(nullable: bool = False) -> sa.Column:
    return sa.Column("name", sa.String(255), nullable=nullable)


def state(col: str = "state") -> sa.Column:
    return sa.Column(col, sa.String(32), nullable=False)


def created_at() -> sa.Column:
    return sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.func.now())
