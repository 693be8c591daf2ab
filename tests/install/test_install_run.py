"""`skylift install` end to end, on real artefacts, databases and MN processes."""

from __future__ import annotations

import socket
import stat
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from skylift.db.engine import Database
from skylift.db.migrate import status
from skylift.install import install
from skylift.install import run as install_run
from skylift.install.run import InstallRefused
from skylift.mn.launch import MnHandle, mn_client, stop_mn
from skylift.mn.auth import read_token
from skylift.units import verify


def _stop(summary: dict, home: Path) -> None:
    """Stop the MN the install started, by its identity (pid and command line)."""
    started = summary["started"]
    spec_port = int(summary["mn_url"].rsplit(":", 1)[1])
    handle = MnHandle(started["pid"], "127.0.0.1", spec_port, "normal", summary["release"],
                      Path(started["log"]), home)
    stop_mn(handle)
    assert not handle.alive()


def test_a_fresh_install_runs_an_mn_a_rerun_changes_nothing_an_older_installer_is_refused(
        make_spec, skylift_home, snapshot):
    spec = make_spec()
    summary = install(spec)
    try:
        assert summary["release"] == "4.3.12" and not summary["already_installed"]
        with httpx.Client(timeout=10) as client:
            version = client.get(f"{summary['mn_url']}/v1/version").json()
        assert version["release"] == "4.3.12" and version["mode"] == "normal"
        # the MN runs the slot's code, and answers with the admin token the install made
        assert summary["started"]["how"] == "mn.launch"
        token = Path(summary["token_file"])
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        with mn_client(summary["mn_url"], read_token(token)) as client:
            assert client.get("/v1/inventory/counts").status_code == 200
        for name in ("config.toml", "install.json"):
            assert stat.S_IMODE((skylift_home / name).stat().st_mode) == 0o600
        assert (skylift_home / "mn" / "slots" / "current").readlink() == Path("4.3.12")
        assert (skylift_home / "mn" / "pki" / "ca.pem").is_file()
        assert status(Database.from_string(summary["database"]["url"])).release == "4.3.12"
        assert summary["repository"]["release"] == "4.3.12"
        unit = Path(summary["units"][0]["file"])
        assert unit == skylift_home / "units" / "skylift-mn.service"
        assert summary["units"][0]["verified"] and verify(unit) == []
        assert "Environment=PYTHONPATH=" in unit.read_text()
        # the unit's ExecStart is the very command line of the running MN
        argv = Path(f"/proc/{summary['started']['pid']}/cmdline").read_bytes().split(b"\0")[:-1]
        exec_start = next(ln for ln in unit.read_text().splitlines()
                          if ln.startswith("ExecStart="))
        import shlex
        assert shlex.split(exec_start[len("ExecStart="):]) == [a.decode() for a in argv]

        before = snapshot(skylift_home)
        again = install(spec)
        assert again["already_installed"] and again["changed"] == [] and again["mn_answers"]
        assert snapshot(skylift_home) == before

        with pytest.raises(InstallRefused) as refused:
            install(make_spec("4.0.0", port=spec.port))
        assert refused.value.exit_code == 2
        text = refused.value.render()
        assert "4.3.12" in text and "4.0.0" in text and "skylift upgrade" in text
        assert snapshot(skylift_home) == before
    finally:
        _stop(summary, skylift_home)


def test_a_port_in_use_refuses_and_leaves_nothing_behind(make_spec, skylift_home):
    spec = make_spec()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", spec.port))
        busy.listen()
        with pytest.raises(InstallRefused) as refused:
            install(spec)
    report = refused.value.report
    assert [f.check_id for f in report.inhibitors] == ["mn-port"]
    assert refused.value.to_dict()["checks"]["inhibited"]
    assert not skylift_home.exists()


def test_dry_run_changes_nothing(make_spec, skylift_home):
    out = install(make_spec(dry_run=True))
    assert out["dry_run"] and len(out["plan"]) >= 8
    assert "ExecStart=" in out["unit"]
    assert not skylift_home.exists()


def test_an_os_release_the_image_does_not_serve_is_refused(make_spec, skylift_home):
    with pytest.raises(InstallRefused) as refused:
        install(make_spec(os_release="c76"))
    assert [f.check_id for f in refused.value.report.inhibitors] == ["os-release"]
    assert "c76" in refused.value.what
    assert not skylift_home.exists()


def test_an_untrusted_installer_is_refused(make_spec, skylift_home, tmp_path):
    from skylift.release.keys import generate_keypair

    other = generate_keypair(tmp_path / "other")
    with pytest.raises(InstallRefused) as refused:
        install(make_spec(trusted_keys=[str(other.public_path)]))
    assert refused.value.report.inhibitors[0].check_id == "artefacts-verified"
    assert not skylift_home.exists()


def test_a_killed_install_completes_when_run_again(make_spec, skylift_home, monkeypatch):
    spec = make_spec(start=False)
    real = install_run.update_from_image

    def killed(*args, **kw):
        raise KeyboardInterrupt  # as a kill at the repository part

    monkeypatch.setattr(install_run, "update_from_image", killed)
    with pytest.raises(KeyboardInterrupt):
        install(spec)
    assert not (skylift_home / "install.json").exists()
    monkeypatch.setattr(install_run, "update_from_image", real)
    out = install(spec)
    assert not out["already_installed"] and out["started"] is None
    assert out["repository"]["release"] == "4.3.12"
    assert (skylift_home / "install.json").exists()
    assert not (skylift_home / "install.pending.json").exists()


def test_a_killed_install_midway_through_the_migration_completes(make_spec, skylift_home,
                                                                  monkeypatch):
    """The database that install was creating stopped at an older release: completed, not
    taken for an older cloud to upgrade."""
    from skylift.db import migrate

    spec = make_spec(start=False)
    real = migrate.migrate

    def halfway(db, to, **kw):
        real(db, to="3.9.0")
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate, "migrate", halfway)
    with pytest.raises(KeyboardInterrupt):
        install(spec)
    monkeypatch.setattr(migrate, "migrate", real)
    out = install(spec)
    assert status(Database.from_string(out["database"]["url"])).release == "4.3.12"


@pytest.fixture
def protected_mariadb(make_db):
    """A clean MariaDB database and an account with a password that may use it."""
    db = make_db("mysql")
    user, password = f"sk_{uuid.uuid4().hex[:6]}", "Pw-" + uuid.uuid4().hex[:12]
    admin = db.engine(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'"))
        conn.execute(sa.text(f"GRANT ALL PRIVILEGES ON `{db.name}`.* TO '{user}'@'127.0.0.1'"))
    yield f"mysql://{user}@127.0.0.1:3306/{db.name}", password
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'"))
    admin.dispose()


def test_mariadb_with_the_password_from_a_file(make_spec, skylift_home, tmp_path,
                                              protected_mariadb):
    url, password = protected_mariadb
    secret = tmp_path / "db-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    spec = make_spec(db_url=url, db_password=password, db_password_file=secret)
    summary = install(spec)
    try:
        assert summary["database"]["dialect"] == "mysql"
        assert summary["database"]["action"] == "created"
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{summary['mn_url']}/v1/version").json()["release"] == "4.3.12"
        unit = Path(summary["units"][0]["file"]).read_text()
        assert f"--password-file {secret}" in unit and password not in unit
        for path in skylift_home.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert password.encode() not in path.read_bytes(), path
        assert password not in Path(f"/proc/{summary['started']['pid']}/cmdline").read_text()
    finally:
        _stop(summary, skylift_home)
