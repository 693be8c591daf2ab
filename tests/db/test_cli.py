"""The `skylift db` commands as an operator runs them: real processes, exit codes, JSON."""

from __future__ import annotations

import json
import subprocess
import sys


def skylift(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "skylift.cli.main", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_seed_status_migrate_round_trip(make_db):
    db = make_db("sqlite")
    url = db.url.render_as_string(hide_password=False)
    out = skylift("db", "seed", "--release", "3.7.1", "--hosts", "4", "--vms", "12",
                  "--db", url, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["counts"]["vm_instances"] == 12

    st = json.loads(skylift("db", "status", "--db", url, "--json").stdout)
    assert (st["release"], st["revision"]) == ("3.7.1", "r371")

    dry = skylift("db", "migrate", "--to", "4.3.12", "--dry-run", "--db", url)
    assert dry.returncode == 0 and "would migrate from 3.7.1 to 4.3.12" in dry.stdout
    assert json.loads(skylift("db", "status", "--db", url, "--json").stdout)["release"] == "3.7.1"

    done = skylift("db", "migrate", "--to", "4.3.12", "--db", url, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["to"] == "4.3.12"

    down = skylift("db", "migrate", "--to", "3.9.0", "--db", url)
    assert down.returncode == 2
    assert "refusing to downgrade" in down.stderr and "next:" in down.stderr
    assert "Traceback" not in down.stderr


def test_default_database_lives_under_skylift_home(skylift_home):
    out = skylift("db", "seed", "--release", "3.2.0", "--hosts", "1", "--vms", "1")
    assert out.returncode == 0, out.stderr
    assert (skylift_home / "skylift.db").exists()


def test_bad_input_is_refused_with_a_clear_error(make_db):
    url = make_db("sqlite").url.render_as_string(hide_password=False)
    bad_release = skylift("db", "seed", "--release", "9.9.9", "--db", url)
    assert bad_release.returncode == 2 and "unknown release 9.9.9" in bad_release.stderr
    bad_url = skylift("db", "status", "--db", "oracle://x/y")
    assert bad_url.returncode == 2 and "not supported" in bad_url.stderr


def test_wrong_password_is_never_shown(make_db):
    db = make_db("mysql")
    url = db.url.set(username="nobody_here").render_as_string(hide_password=False)
    out = skylift("db", "status", "--db", url,
                  env_extra={"SKYLIFT_DB_PASSWORD": "s3cret-Pa55"})
    assert out.returncode == 1
    assert "cannot read the database revision" in out.stderr
    assert "s3cret-Pa55" not in out.stderr + out.stdout
