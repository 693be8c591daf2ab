"""MN processes: heartbeat and graceful SIGTERM (on MariaDB and PostgreSQL too), drain, the
SO_REUSEPORT handover to a second MN without a refused connection, an empty database."""

from __future__ import annotations

import datetime as dt
import threading
import time

import httpx
import pytest
from mn_kit import db_url, finish_call, heartbeats, hold_call, running_mn, seeded_sqlite

from skylift.agent.launch import free_port
from skylift.db.backup import running_management_nodes
from skylift.db.migrate import migrate
from skylift.errors import OperationFailed
from skylift.mn.launch import await_mn, spawn_mn, start_mn, stop_mn
from skylift.processes import listening_pids


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"])
def test_heartbeat_then_graceful_sigterm_finishes_calls_and_says_stopped(dialect, make_db,
                                                                         tmp_path):
    db = make_db(dialect)
    migrate(db)
    mn = start_mn(db_url(db), port=free_port(), env={"SKYLIFT_HOME": str(tmp_path / "home")})
    try:
        rows = heartbeats(db)
        assert [(r["pid"], r["state"], r["version"]) for r in rows] == [
            (mn.pid, "running", "4.3.12")]
        age = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - rows[0]["heartbeat_at"]
        assert abs(age.total_seconds()) < 10  # UTC, naive
        assert running_management_nodes(db)
        body = b'{"value": "false"}'
        held = hold_call(mn, "PUT", "/v1/global-settings/ha/enable", body)
        time.sleep(0.3)
        stopper = threading.Thread(target=stop_mn, args=(mn,))
        stopper.start()
        time.sleep(0.5)
        assert mn.alive()  # still finishing the call in flight
        status, answer = finish_call(held, body)
        stopper.join(30)
    finally:
        code = stop_mn(mn)
    assert status == 200 and b'"value":"false"' in answer
    assert code == 0
    assert [r["state"] for r in heartbeats(db)] == ["stopped"]
    assert running_management_nodes(db) == []


def test_heartbeat_beats_every_five_seconds(tmp_path):
    db = seeded_sqlite(tmp_path, "4.3.12", hosts=1, vms=0)
    with running_mn(db, tmp_path / "home"):
        first = heartbeats(db)[0]["heartbeat_at"]
        time.sleep(5.6)
        assert heartbeats(db)[0]["heartbeat_at"] > first


def test_drain_refuses_new_work_and_waits_for_calls_in_flight(tmp_path):
    db = seeded_sqlite(tmp_path, "4.3.12", hosts=1, vms=0)
    with running_mn(db, tmp_path / "home") as mn, mn.client() as client:
        body = b'{"value": "120"}'
        held = hold_call(mn, "PUT", "/v1/global-settings/host/pingInterval", body)
        time.sleep(0.2)
        drained = client.post("/v1/drain").json()
        assert drained["state"] == "draining" and not drained["drained"]
        assert [c["path"] for c in drained["in_flight"]] == [
            "/v1/global-settings/host/pingInterval"]
        busy = client.get("/v1/inventory")
        assert busy.status_code == 503 and busy.json()["what"] == "upgrade in progress"
        assert busy.headers["retry-after"]
        assert [r["state"] for r in heartbeats(db)] == ["draining"]
        assert "stopping" not in mn.log_path.read_text()  # the parts stopped cleanly
        assert finish_call(held, body)[0] == 200
        assert client.post("/v1/drain", params={"wait": 5}).json()["drained"]
        assert client.get("/v1/health").json()["mode"] == "draining"
        version = client.get("/v1/version").json()
        assert version["serving"] is False and "draining" in version["reason"]
        assert client.get("/v1/global-settings/ha/enable").status_code == 200


def test_second_mn_takes_over_the_port_without_a_refused_connection(tmp_path):
    db = seeded_sqlite(tmp_path, "4.3.12", hosts=1, vms=0)
    port = free_port()
    home = {"SKYLIFT_HOME": str(tmp_path / "home")}
    first = start_mn(db_url(db), port=port, env=home)
    answers: dict[int, int] = {}
    failures: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:  # a new connection each time, as a fresh client would
                resp = httpx.get(f"{first.url}/v1/health", timeout=5)
                answers[resp.json()["pid"]] = answers.get(resp.json()["pid"], 0) + 1
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.002)

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    second = None
    try:
        for t in pollers:
            t.start()
        time.sleep(0.5)
        second = start_mn(db_url(db), port=port, env=home, maintenance=True)
        time.sleep(0.3)
        seen = dict(answers)
        time.sleep(0.5)
        # once the new MN listens, every new connection reaches it (the old one only finishes)
        assert answers.get(second.pid, 0) > seen.get(second.pid, 0)
        assert answers.get(first.pid, 0) == seen.get(first.pid, 0)
        assert stop_mn(first) == 0
        time.sleep(0.5)
    finally:
        stop.set()
        for t in pollers:
            t.join(10)
        stop_mn(first)
        if second is not None:
            version = httpx.get(f"{second.url}/v1/version").json()
            stop_mn(second)
    assert failures == []
    assert answers.get(first.pid) and answers.get(second.pid)
    assert version["mode"] == "maintenance" and version["pid"] == second.pid


def test_an_empty_database_is_refused_at_start(make_db, tmp_path):
    db = make_db("sqlite")
    with pytest.raises(OperationFailed) as err:
        start_mn(db_url(db), port=free_port(), env={"SKYLIFT_HOME": str(tmp_path / "h")},
                 timeout=20)
    assert "is empty" in err.value.why


def test_the_database_password_never_reaches_argv_or_the_log(make_db, tmp_path):
    db = make_db("postgresql")  # the test server trusts local connections: any password works
    migrate(db)
    secret = "s3cret-Pw-" + tmp_path.name[-6:]
    url = db.url.set(password=secret).render_as_string(hide_password=False)
    mn = start_mn(url, port=free_port(), env={"SKYLIFT_HOME": str(tmp_path / "home")})
    try:
        cmdline = open(f"/proc/{mn.pid}/cmdline", "rb").read().decode()
        assert secret not in cmdline and "skylift.mn\x00serve" in cmdline
        with mn.client() as client:
            assert client.get("/v1/global-settings").status_code == 200
    finally:
        assert stop_mn(mn) == 0
    assert secret not in mn.log_path.read_text()
    assert mn.token() not in mn.log_path.read_text()


def test_cli_status_reads_the_version(tmp_path):
    import json
    import subprocess
    import sys

    db = seeded_sqlite(tmp_path, "4.3.12", hosts=1, vms=0)
    with running_mn(db, tmp_path / "home") as mn:
        out = subprocess.run([sys.executable, "-m", "skylift.cli.main", "mn", "status",
                              "--url", mn.url, "--json"], capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["release"] == "4.3.12"


def test_a_standby_mn_neither_listens_nor_reads_the_database_until_told_then_serves(tmp_path):
    """What the upgrade prepares before its API window: the process, its code loaded."""
    db = seeded_sqlite(tmp_path, "4.3.12", hosts=1, vms=0)
    port = free_port()
    started = spawn_mn(db_url(db), port=port, env={"SKYLIFT_HOME": str(tmp_path / "home")},
                       standby=True)
    try:
        time.sleep(1.5)
        assert started.popen.poll() is None
        assert listening_pids(port) == set()
        assert heartbeats(db) == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/v1/version", timeout=2.0)

        mn = await_mn(started, timeout=30.0)

        assert mn.pid == started.pid and (mn.mode, mn.release) == ("normal", "4.3.12")
        assert listening_pids(port) == {mn.pid}
        assert httpx.get(f"{mn.url}/v1/version", timeout=5.0).json()["pid"] == mn.pid
        assert [r["state"] for r in heartbeats(db)] == ["running"]
    finally:
        started.popen.terminate()
        started.popen.wait(30)


def test_a_standby_mn_never_told_leaves_on_sigterm_at_once(tmp_path):
    db = seeded_sqlite(tmp_path, "4.3.12", hosts=1, vms=0)
    started = spawn_mn(db_url(db), port=free_port(),
                       env={"SKYLIFT_HOME": str(tmp_path / "home")}, standby=True)
    time.sleep(0.5)
    started.popen.terminate()
    assert started.popen.wait(10) == -15
    assert heartbeats(db) == []
