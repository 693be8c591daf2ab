"""Content digests of a database: per table, its row count and a sha256 over its rows.

A backup's manifest holds these digests, and verify/restore recompute them on the restored
copy, with the method the manifest names: equal digests mean the same rows.

- ROWS_SHA256 (every dialect): skylift reads the rows in primary-key order as the driver
  returns them (no SQLAlchemy type processing, so a digest reflects what is stored), and each
  value is normalised so that the same data gives the same digest after a dump and a restore
  on the same dialect: booleans count as 0/1, datetimes are rendered in UTC, decimals lose
  trailing zeros, binary values are hex, NULL stays distinct from every string.
- SERVER_SHA256 (MariaDB): the server hashes each row itself (SHA2 of its quoted values) and
  the sha256 of the sorted row hashes comes back; no row crosses the wire. Reading every row
  through the driver was most of a MariaDB backup's time (docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from skylift.lineage import release_of_revision

# Rows fetched per round trip when streaming a table.
_BATCH = 2000

# Liveness data, not inventory: a management node (even in maintenance mode) rewrites it every
# few seconds, so its content may differ between a dump and the digests read beside it. Such a
# table must exist after a restore; its rows are not compared.
VOLATILE_TABLES = frozenset({"mn_heartbeat"})

ROWS_SHA256 = "rows-sha256"
SERVER_SHA256 = "server-sha256"
DIGEST_METHODS = (ROWS_SHA256, SERVER_SHA256)


@dataclass(frozen=True)
class TableDigest:
    """One table's row count and the sha256 over its normalised rows."""

    rows: int
    sha256: str


def normalise(value: object) -> object:
    """A JSON-able form of a column value, equal for equal data on one dialect.

    Values other than plain strings, integers and NULL are tagged so that, say, the string
    '1.5' and the decimal 1.5 do not collide.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int; MariaDB stores booleans as 0/1
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, decimal.Decimal):
        # 1.50 and 1.5 are the same number; a DECIMAL(10,2) column may hand back either form.
        return ["d", format(value.normalize(), "f")]
    if isinstance(value, float):
        return ["f", repr(value)]
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:  # timestamptz comes back in the session's time zone
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return ["t", value.isoformat()]
    if isinstance(value, (dt.date, dt.time)):
        return ["t", value.isoformat()]
    if isinstance(value, dt.timedelta):
        return ["i", value.total_seconds()]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ["x", bytes(value).hex()]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dict, list, tuple)):
        return ["j", json.dumps(value, sort_keys=True, default=str)]
    return ["?", str(value)]


def _row_line(row) -> bytes:
    return (json.dumps([normalise(v) for v in row], ensure_ascii=False,
                       separators=(",", ":")) + "\n").encode()


def table_digest(conn: Connection, table: str, columns: list[str], pk: list[str]) -> TableDigest:
    """Digest one table: rows in primary-key order (sorted lines when it has no key)."""
    quote = conn.dialect.identifier_preparer.quote
    cols = ", ".join(quote(c) for c in columns)
    sql = f"SELECT {cols} FROM {quote(table)}"
    if pk:
        sql += " ORDER BY " + ", ".join(quote(c) for c in pk)
    result = conn.execution_options(stream_results=True, yield_per=_BATCH).exec_driver_sql(sql)
    digest = hashlib.sha256()
    count = 0
    if pk:
        for row in result:
            digest.update(_row_line(row))
            count += 1
    else:
        # No key, no stable order in SQL (and some column types cannot be ordered by): sort the
        # normalised lines instead. Such tables are small in practice.
        lines = sorted(_row_line(row) for row in result)
        for line in lines:
            digest.update(line)
        count = len(lines)
    return TableDigest(rows=count, sha256=digest.hexdigest())


def digest_method(conn: Connection) -> str:
    """The cheapest sound method on this connection's dialect: the server's own on MariaDB."""
    return SERVER_SHA256 if conn.dialect.name in ("mysql", "mariadb") else ROWS_SHA256


def server_table_digest(conn: Connection, table: str, columns: list[str]) -> TableDigest:
    """Digest one MariaDB table on the server: SHA2 of each row's quoted values (bytes, so no
    collation can refuse the concatenation; QUOTE keeps NULL apart from the string 'NULL'),
    then the sha256 of those hashes in sorted order (no key needed)."""
    quote = conn.dialect.identifier_preparer.quote
    values = ", ".join(f"QUOTE(CAST({quote(c)} AS BINARY))" for c in columns)
    sql = (f"SELECT COUNT(*), SHA2(COALESCE(GROUP_CONCAT(h ORDER BY h SEPARATOR ''), ''), 256) "
           f"FROM (SELECT SHA2(CONCAT_WS(',', {values}), 256) AS h FROM {quote(table)}) AS r")
    count, sha = conn.exec_driver_sql(sql).one()
    return TableDigest(rows=int(count), sha256=str(sha))


def database_digests(conn: Connection, method: str | None = None) -> dict[str, TableDigest]:
    """Digest every table of the connection's default schema, by table name, with this method
    (default: digest_method's for the dialect)."""
    method = method or digest_method(conn)
    if method not in DIGEST_METHODS:
        raise ValueError(f"unknown digest method {method!r}")
    if method == SERVER_SHA256:
        if conn.dialect.name not in ("mysql", "mariadb"):
            raise ValueError(f"digest method {method} is MariaDB's, not {conn.dialect.name}'s")
        # every row hash is 64 bytes; the default limit (1 MB) would cut a table at 16,384 rows
        conn.exec_driver_sql("SET SESSION group_concat_max_len = 18446744073709551615")
    insp = sa.inspect(conn)
    digests: dict[str, TableDigest] = {}
    for table in sorted(insp.get_table_names()):
        columns = [c["name"] for c in insp.get_columns(table)]
        if method == SERVER_SHA256:
            digests[table] = server_table_digest(conn, table, columns)
            continue
        pk = list(insp.get_pk_constraint(table).get("constrained_columns") or [])
        digests[table] = table_digest(conn, table, columns, pk)
    return digests


def server_checksums(conn: Connection) -> dict[str, int | None]:
    """MariaDB's own CHECKSUM TABLE of every table, by name: computed by the server, a
    fraction of database_digests' cost, and equal only while a table's rows are."""
    names = sorted(sa.inspect(conn).get_table_names())
    if not names:
        return {}
    quote = conn.dialect.identifier_preparer.quote
    rows = conn.exec_driver_sql("CHECKSUM TABLE " + ", ".join(quote(n) for n in names))
    return {str(name).rsplit(".", 1)[-1]: checksum for name, checksum in rows}


def read_revision(conn: Connection) -> tuple[str | None, str | None]:
    """The Alembic revision in table alembic_version and its release (None, None if absent)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None, None
    rows = [r[0] for r in conn.exec_driver_sql("SELECT version_num FROM alembic_version")]
    if not rows:
        return None, None
    revision = sorted(rows)[0] if len(rows) > 1 else rows[0]
    rel = release_of_revision(revision)
    return revision, rel.version if rel else None
