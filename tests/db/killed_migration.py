"""Migrate a database and SIGKILL this process right after the first statement that holds
MARKER (a statement inside a revision, not at its end).

    python killed_migration.py DB_URL MARKER
"""

import os
import signal
import sys

import sqlalchemy as sa

from skylift.db.engine import Database
from skylift.db.migrate import migrate

url, marker = sys.argv[1], sys.argv[2]


@sa.event.listens_for(sa.engine.Engine, "after_cursor_execute")
def _kill_after(conn, cursor, statement, parameters, context, executemany):
    if marker in statement:
        os.kill(os.getpid(), signal.SIGKILL)


migrate(Database.from_string(url))
