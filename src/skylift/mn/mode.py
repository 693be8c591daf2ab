"""Which mode a management node runs in: normal, or maintenance.

Maintenance is asked for (--maintenance) or forced when the database is older than this code
(an upgrade is under way: the schema does not match the newest models yet). The check reads
only the Alembic revision, so it works against a database of any release.
"""

from __future__ import annotations

from dataclasses import dataclass

from skylift.db.engine import Database
from skylift.db.migrate import status
from skylift.errors import Refused
from skylift.lineage import NEWEST, release

NORMAL = "normal"
MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class RunMode:
    """The mode chosen at start, and the facts it was chosen from."""

    mode: str
    db_release: str
    revision: str
    release: str  # the release this MN reports (GET /v1/version)
    reason: str
    asked: bool = False  # started with --maintenance (not forced by an older database)

    @property
    def maintenance(self) -> bool:
        return self.mode == MAINTENANCE


def detect(db: Database, *, maintenance: bool = False,
           release_override: str | None = None) -> RunMode:
    """The mode for this database; refuses an empty database or one newer than this code."""
    st = status(db)  # refuses a revision this code does not know (a newer release)
    if st.revision is None:
        raise Refused(f"the database {db.display()} is empty",
                      why="a management node needs a cloud database of some release",
                      next="create one with `skylift db migrate` or `skylift db seed`")
    current = st.complete and st.revision == NEWEST.revision
    if release_override is not None:
        release(release_override)  # a malformed or unknown release is refused here
    if maintenance:
        mode, reason = MAINTENANCE, "started with --maintenance"
    elif not current:
        mode = MAINTENANCE
        reason = (f"the database is at release {st.release} (revision {st.revision}), "
                  f"older than this management node ({NEWEST.version})")
    else:
        mode, reason = NORMAL, f"the database is at release {NEWEST.version}"
    # In maintenance the MN reports the release of the database it runs against: that is the
    # release the cloud is at until the upgrade has migrated it.
    default = st.release if mode == MAINTENANCE else NEWEST.version
    return RunMode(mode, st.release, st.revision, release_override or default, reason,
                   asked=maintenance)
