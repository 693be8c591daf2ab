"""Dump a SQLite database and stop for good halfway through copying it, for a test to kill.

    python pausing_dump.py DB_FILE BACKUP_DIR MARKER

The copy is made one page at a time; once half of it is written (the copy and its journal
are on disk), MARKER is created and the process waits to be killed. The product is not
changed: the pause is a sqlite3 connection class of this script's own.
"""

import sqlite3
import sys
import time
from pathlib import Path

from skylift.db import backup
from skylift.db.engine import Database

db_file, folder, marker = sys.argv[1:4]


class Pausing(sqlite3.Connection):
    def backup(self, target, **kwargs):
        def halfway(status, remaining, total):
            if remaining <= total // 2:
                Path(marker).touch()
                time.sleep(3600)

        super().backup(target, pages=1, progress=halfway)


_connect = sqlite3.connect
sqlite3.connect = lambda *args, **kwargs: _connect(*args, factory=Pausing, **kwargs)
backup.dump(Database.from_string(f"sqlite:///{db_file}"), Path(folder), "nightly")
