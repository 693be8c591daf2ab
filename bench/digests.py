"""Benchmark: a MariaDB database's content digests, read by skylift against the server's own.

    python3 bench/digests.py [--hosts 1000] [--vms 10000,20000] [--rounds 5]
                             [--db mysql://root@127.0.0.1:3306/]

For each VM count: seeds a 4.3.12 cloud (skylift.lab.seed) in a database of its own, then
times `database_digests` by each method, --rounds times each, alternating: `rows-sha256`
(every row through pymysql, normalised and hashed in Python) and `server-sha256` (MariaDB
hashes each row, skylift gets one sha256 per table). A backup computes the digests twice: of
the database when it dumps, of the restored copy when it verifies. The floor is one
`SELECT COUNT(*)` per table (a round trip per table, no hashing). Prints median seconds and
the ratio of each to the floor and to the rows method.
"""

from __future__ import annotations

import argparse
import statistics
import time

import sqlalchemy as sa

from skylift.db.content_digest import ROWS_SHA256, SERVER_SHA256, database_digests
from skylift.db.engine import Database, create_database, drop_database
from skylift.lab.seed import seed


def _floor(conn) -> None:
    quote = conn.dialect.identifier_preparer.quote
    for table in sorted(sa.inspect(conn).get_table_names()):
        conn.exec_driver_sql(f"SELECT COUNT(*) FROM {quote(table)}").one()


def run(server: Database, hosts: int, vms: int, rounds: int) -> dict:
    db = create_database(server, f"skylift_bench_digests_{vms}")
    try:
        seed(db, "4.3.12", hosts, vms, os_release="c74")
        eng = db.engine()
        times: dict[str, list[float]] = {"floor": [], ROWS_SHA256: [], SERVER_SHA256: []}
        try:
            with eng.connect() as conn:
                rows = sum(d.rows for d in database_digests(conn, SERVER_SHA256).values())
                for _ in range(rounds):
                    for name in times:
                        began = time.perf_counter()
                        if name == "floor":
                            _floor(conn)
                        else:
                            database_digests(conn, name)
                        times[name].append(time.perf_counter() - began)
        finally:
            eng.dispose()
        return {"vms": vms, "rows": rows, **{k: statistics.median(v) for k, v in times.items()}}
    finally:
        drop_database(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--vms", default="10000,20000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", default="mysql://root@127.0.0.1:3306/")
    args = parser.parse_args()
    server = Database.from_string(args.db)
    results = [run(server, args.hosts, int(v), args.rounds) for v in args.vms.split(",")]
    print("| VMs | rows in all | floor (COUNT per table) s | rows-sha256 s | server-sha256 s "
          "| rows / floor | server / floor | rows / server |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        rows_s, server_s, floor = r[ROWS_SHA256], r[SERVER_SHA256], r["floor"]
        print(f"| {r['vms']:,} | {r['rows']:,} | {floor:.3f} | {rows_s:.3f} | {server_s:.3f} "
              f"| {rows_s / floor:.1f}x | {server_s / floor:.1f}x | {rows_s / server_s:.1f}x |")


if __name__ == "__main__":
    main()
