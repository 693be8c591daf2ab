"""The server's own digest of a MariaDB table (content_digest.SERVER_SHA256): it tells apart
what the rows method tells apart, past the server's GROUP_CONCAT default limit, and a dump's
manifest says which method made its digests, so a manifest older than the method still
verifies."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from skylift.db import backup
from skylift.db.content_digest import (ROWS_SHA256, SERVER_SHA256, database_digests,
                                       digest_method)
from skylift.db.dump_manifest import manifest_path
from skylift.errors import BackupError
from test_backup_data import populate

ROWS = sa.Table("row_t", sa.MetaData(),
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("label", sa.String(32)),
                sa.Column("payload", sa.LargeBinary(8)))


def _digest(db, method=SERVER_SHA256):
    eng = db.engine()
    try:
        with eng.connect() as conn:
            return database_digests(conn, method)["row_t"]
    finally:
        eng.dispose()


def _fill(db, rows):
    eng = db.engine()
    try:
        ROWS.create(eng)
        with eng.begin() as conn:
            conn.execute(ROWS.insert(), rows)
    finally:
        eng.dispose()


def _set(db, sql):
    eng = db.engine()
    try:
        with eng.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        eng.dispose()


def test_mariadb_is_digested_by_the_server_and_others_by_reading_rows(make_db):
    for dialect, method in (("mysql", SERVER_SHA256), ("sqlite", ROWS_SHA256),
                            ("postgresql", ROWS_SHA256)):
        eng = make_db(dialect).engine()
        try:
            with eng.connect() as conn:
                assert digest_method(conn) == method
        finally:
            eng.dispose()


@pytest.mark.parametrize("change", [
    "UPDATE row_t SET label = NULL WHERE id = 7",      # 'NULL' the string, then NULL
    "UPDATE row_t SET label = '' WHERE id = 8",        # NULL, then the empty string
    "UPDATE row_t SET label = 'a,b' WHERE id = 9",     # the separator inside a value
    "UPDATE row_t SET payload = X'00' WHERE id = 10",
    "UPDATE row_t SET id = 20001 WHERE id = 20000",    # the last row in key order
])
def test_the_server_digest_changes_with_any_value_past_16384_rows(make_db, change):
    db = make_db("mysql")
    rows = [{"id": i, "label": f"vm-{i}", "payload": i.to_bytes(4, "big")} for i in range(1, 20001)]
    rows[6]["label"], rows[7]["label"], rows[8]["label"] = "NULL", None, "a"
    _fill(db, rows)
    before = _digest(db)
    assert before.rows == 20000

    _set(db, change)

    assert _digest(db).sha256 != before.sha256


def test_the_server_digest_does_not_depend_on_the_order_rows_were_written(make_db):
    rows = [{"id": i, "label": f"vm-{i}", "payload": None} for i in range(1, 300)]
    one, other = make_db("mysql"), make_db("mysql")
    _fill(one, rows)
    _fill(other, rows[::-1])
    assert _digest(one) == _digest(other)


def test_a_manifest_says_its_method_and_one_without_it_is_read_as_rows(make_db, tmp_path):
    db = make_db("mysql")
    populate(db, vms=50)
    result = backup.dump(db, tmp_path, "nightly")
    assert result.manifest.digest == SERVER_SHA256
    mpath = manifest_path(result.path)
    doc = json.loads(mpath.read_text())
    assert doc["digest"] == SERVER_SHA256

    # as a skylift before the method wrote it: digests by reading rows, no "digest" key
    eng = db.engine()
    try:
        with eng.connect() as conn:
            rows = database_digests(conn, ROWS_SHA256)
    finally:
        eng.dispose()
    del doc["digest"]
    doc["tables"] = {t: {"rows": d.rows, "sha256": d.sha256} for t, d in rows.items()}
    mpath.write_text(json.dumps(doc))
    assert backup.verify(result.path, db).ok

    doc["digest"] = "sha3-of-the-future"
    mpath.write_text(json.dumps(doc))
    with pytest.raises(BackupError, match="digest method this skylift does not know") as err:
        backup.verify(result.path, db)
    assert "newer skylift" in err.value.why
