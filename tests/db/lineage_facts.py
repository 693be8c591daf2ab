"""Reading the router facts of a database at any release, for assertions (the identity
facts are in identity_facts.py).

Written independently of the migrations (plain SQL over both shapes of the schema), so the
tests check the migrations against a second, simple reading of what the data means.
"""

from __future__ import annotations

import sqlalchemy as sa


def _rows(conn, sql: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(sa.text(sql))]


def tables(conn) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def router_facts(conn) -> dict:
    """Routers by uuid with their attachments (l3, ip) — legacy or VPC."""
    if "virtual_routers" in tables(conn):
        names = _rows(conn, "SELECT uuid, name FROM virtual_routers")
        refs = _rows(conn, "SELECT vr_uuid, l3_uuid, nic_ip FROM virtual_router_l3_refs")
    else:
        names = _rows(conn, "SELECT uuid, name FROM vpc_vrouters")
        refs = _rows(conn, "SELECT vrouter_uuid, l3_uuid, nic_ip FROM vpc_vrouter_l3_refs")
    return {"routers": dict(names), "attachments": set(refs)}
