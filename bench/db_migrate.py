"""Benchmark: migrate a 3.2.0 database of about N inventory rows to 4.3.12.

The floor, timed in the same run on the same seeded database: copying every table once with
one INSERT ... SELECT each (what any migration that rewrote all the data would at least cost).

    python bench/db_migrate.py [--rows 1000000] [--dialects sqlite,mysql]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import sqlalchemy as sa

from skylift.db.engine import Database, create_database, drop_database
from skylift.db.migrate import migrate
from skylift.lab.seed import seed
from skylift.lineage import NEWEST

SERVERS = {"mysql": os.environ.get("SKYLIFT_BENCH_MARIADB", "mysql://root@127.0.0.1:3306/"),
           "postgresql": os.environ.get("SKYLIFT_BENCH_POSTGRES",
                                        "postgresql://postgres@127.0.0.1:5432/postgres")}
ROWS_PER_VM = 4.4  # vm, root volume, half a data volume, nic, a third of a snapshot, ...


def floor_seconds(db: Database) -> float:
    """Copy every table once with one INSERT ... SELECT each; drop the copies."""
    eng = db.engine()
    with eng.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
    elapsed = 0.0
    with eng.begin() as conn:
        for table in tables:
            copy = f"floor_{table}"
            if db.dialect == "mysql":
                conn.exec_driver_sql(f"CREATE TABLE {copy} LIKE {table}")
            else:
                conn.exec_driver_sql(f"CREATE TABLE {copy} AS SELECT * FROM {table} WHERE 1=0")
            started = time.perf_counter()
            conn.exec_driver_sql(f"INSERT INTO {copy} SELECT * FROM {table}")
            elapsed += time.perf_counter() - started
    with eng.begin() as conn:
        for table in tables:
            conn.exec_driver_sql(f"DROP TABLE floor_{table}")
    eng.dispose()
    return elapsed


def run(dialect: str, rows: int, workdir: str) -> dict:
    server = (Database.from_string(f"sqlite:///{workdir}/bench.db") if dialect == "sqlite"
              else Database.from_string(SERVERS[dialect]))
    db = create_database(server, "skylift_bench_migrate")
    drop_database(db)
    db = create_database(server, "skylift_bench_migrate")
    try:
        vms = max(10, int(rows / ROWS_PER_VM))
        seeded = seed(db, "3.2.0", hosts=max(1, vms // 10), vms=vms)
        floor = floor_seconds(db)
        result = migrate(db, NEWEST.version)
        return {"dialect": dialect, "rows": seeded.rows, "seed": seeded.seconds,
                "migrate": result.seconds, "floor": floor}
    finally:
        drop_database(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dialects", default="mysql,sqlite")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for dialect in args.dialects.split(","):
            print(f"# {dialect}: seeding about {args.rows} rows ...", file=sys.stderr)
            results.append(run(dialect, args.rows, workdir))
    print(f"| dialect | rows | seed s | migrate 3.2.0 -> {NEWEST.version} s | floor s "
          "| ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['dialect']} | {r['rows']:,} | {r['seed']:.1f} | {r['migrate']:.2f} "
              f"| {r['floor']:.2f} | {r['migrate'] / r['floor']:.2f} |")


if __name__ == "__main__":
    main()
