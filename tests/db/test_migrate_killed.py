"""kill -9 inside a revision of the migration: the embedded database is left at the last
whole revision, and migrating again finishes (no half-applied revision)."""

import subprocess
import sys
from pathlib import Path

from skylift.db.engine import Database
from skylift.db.migrate import migrate, status
from skylift.lab.seed import seed
from skylift.lineage import NEWEST

SCRIPT = Path(__file__).with_name("killed_migration.py")


def test_a_kill_inside_a_revision_leaves_whole_revisions_only(tmp_path):
    db = Database.from_string(f"sqlite:///{tmp_path / 'cloud.db'}")
    seed(db, "3.7.1", hosts=3, vms=6)
    # the 4.0.0 router migration creates vpc_vrouters, then fills and rewires it
    killed = subprocess.run([sys.executable, str(SCRIPT), db.url.render_as_string(),
                             "CREATE TABLE vpc_vrouters"], capture_output=True, timeout=300)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]

    st = status(db)
    assert st.complete and st.release in ("3.7.1", "3.9.0")

    migrate(db)
    assert status(db).release == NEWEST.version
