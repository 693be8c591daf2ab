"""kill -9 of the upgrade inside a revision of the real migration, then resume: the same end
state as an uninterrupted run, on the embedded database and on MariaDB (which commits each
schema change at once, so the resume starts the migration again from the verified dump)."""

from __future__ import annotations

import itertools

import pytest

from test_single_mn import expected_end_state
from upgrade_world import World

_names = itertools.count()
INSIDE = "management-node/migrate-database:CREATE TABLE vpc_vrouters"  # 4.0.0, mid-revision


@pytest.mark.parametrize("dialect", ["sqlite", "mysql"])
def test_kill_inside_a_revision_then_resume(make_db, dialect):
    db_url = None if dialect == "sqlite" else \
        make_db(dialect).url.render_as_string(hide_password=False)
    world = World(f"mk{next(_names)}", db_url=db_url)
    try:
        killed = world.run_until_killed("statement", INSIDE)
        assert killed.returncode == -9, killed.stdout + killed.stderr

        resumed = world.skylift("upgrade", "resume")

        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert world.end_state() == expected_end_state(world)
    finally:
        from skylift.lab.installation import down

        down(world.state["name"])
