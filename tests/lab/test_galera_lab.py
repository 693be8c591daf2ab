"""A MariaDB Galera cluster on three lab namespace nodes (skylift.lab.galera_lab), read with
the product's skylift.ha.galera: it forms, replicates, survives a crashed member and a cut-off
one, and takes them back with every row written meanwhile.

Lab block 95 is this file's own (no lab name of the tests maps to it with block_of, and no
other test builds namespaces on it); a file lock keeps two runs of this file apart. The
cluster tests need root, mariadbd, galera-4, rsync and iproute2 (skipped otherwise); the
configuration and status tests run anywhere.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

from skylift.db.engine import Database
from skylift.errors import ConfigError, DatabaseError, UsageError
from skylift.ha.galera import (NOT_PRIMARY_ERROR, GaleraMember, WsrepStatus,
                               missing_sst_tools, refused_as_not_primary, sst_method, status)

BLOCK = 95
ADDRS = ["198.18.95.11", "198.18.95.12", "198.18.95.13"]


# --- configuration and status: no cluster needed -------------------------------------------
def member(**kw) -> GaleraMember:
    return GaleraMember(**{"name": "db-1", "address": ADDRS[0], "cluster": ADDRS,
                           "home": Path("/var/lib/skylift/galera"), **kw})


def test_a_member_renders_the_my_cnf_galera_needs():
    text = member(gcache_size="16M", provider_options={"evs.suspect_timeout": "PT2S"},
                  settings={"innodb_buffer_pool_size": "32M"}).render()
    lines = text.splitlines()
    for line in ["[mysqld]", "datadir=/var/lib/skylift/galera/data",
                 "socket=/var/lib/skylift/galera/mariadbd.sock", "port=3306",
                 "bind-address=198.18.95.11", "wsrep_on=ON",
                 "wsrep_provider=/usr/lib/galera/libgalera_smm.so",
                 "wsrep_cluster_address=gcomm://198.18.95.11,198.18.95.12,198.18.95.13",
                 "wsrep_cluster_name=skylift", "wsrep_node_address=198.18.95.11",
                 "wsrep_node_name=db-1", "binlog_format=ROW", "default_storage_engine=InnoDB",
                 "innodb_autoinc_lock_mode=2", "wsrep_sst_method=rsync", "user=mysql",
                 "innodb_buffer_pool_size=32M", "[client]"]:
        assert line in lines, line
    options = next(x for x in lines if x.startswith("wsrep_provider_options="))
    assert "gcache.size=16M" in options and "evs.suspect_timeout=PT2S" in options
    assert "gmcast.listen_addr=tcp://198.18.95.11:4567" in options


@pytest.mark.parametrize("bad", [
    {"address": "db.example"}, {"cluster": ADDRS[1:]}, {"cluster": [*ADDRS, ADDRS[0]]},
    {"name": "db 1"}, {"cluster_name": "a;b"}, {"home": Path("relative")},
    {"home": Path("/tmp/x\nwsrep_on=OFF")}, {"gcache_size": "lots"}, {"sst": "xtrabackup"},
    {"settings": {"init_file": "/x y"}}, {"provider_options": {"a": "b;c=d"}},
    {"home": Path("/" + "x" * 110)}])
def test_a_member_refuses_what_cannot_go_into_my_cnf(bad):
    with pytest.raises(UsageError):
        member(**bad)


def test_the_sst_method_is_mariabackup_where_installed_else_rsync():
    have = {"rsync", "ss"}
    assert sst_method(lambda p: p in have) == "rsync"
    assert missing_sst_tools("mariabackup", lambda p: p in have) == [
        "mariabackup|mariadb-backup", "socat"]
    assert sst_method(lambda p: p in have | {"mariabackup", "socat"}) == "mariabackup"
    with pytest.raises(ConfigError):
        sst_method(lambda p: False)


def test_status_reads_a_members_wsrep_state():
    synced = WsrepStatus.from_rows([
        ("wsrep_local_state_comment", "Synced"), ("wsrep_cluster_size", "3"),
        ("wsrep_cluster_status", "Primary"), ("wsrep_ready", "ON"),
        ("wsrep_connected", "ON"), ("wsrep_last_committed", "42")])
    assert synced.healthy and synced.finding() is None and synced.last_committed == 42
    assert "3 member(s) of 2" in synced.finding(expected_size=2)
    cut = WsrepStatus.from_rows({"WSREP_CLUSTER_STATUS": "non-Primary",
                                 "wsrep_cluster_size": "1", "wsrep_ready": "OFF",
                                 "wsrep_connected": "ON",
                                 "wsrep_local_state_comment": "Initialized"})
    assert not cut.healthy and "not in the Primary component" in cut.finding()
    joining = WsrepStatus.from_rows({
        "wsrep_cluster_status": "Primary", "wsrep_ready": "OFF", "wsrep_connected": "ON",
        "wsrep_local_state_comment": "Joining: receiving State Transfer"})
    assert "not Synced" in joining.finding()
    assert WsrepStatus.from_rows([]).cluster_status == "Disconnected"  # no wsrep at all


def test_status_of_a_server_without_galera_is_disconnected():
    from tests_support import ADMIN_URL   # the machine's own MariaDB (scripts/services.sh)

    st = status(ADMIN_URL)
    assert (st.cluster_status, st.healthy, st.local_index) == ("Disconnected", False, -1)
    assert "not in a Galera cluster" in st.finding()
    conn = pymysql.connect(host="127.0.0.1", user="root", connect_timeout=5)
    try:   # a DB-API connection will do too
        assert status(conn) == st
    finally:
        conn.close()
    eng = Database.from_string(ADMIN_URL).engine()
    try:   # and an SQLAlchemy engine or connection
        assert status(eng) == st
        with eng.connect() as sa_conn:
            assert status(sa_conn) == st
    finally:
        eng.dispose()


def test_status_of_an_unreachable_member_is_a_database_error():
    with pytest.raises(DatabaseError) as err:
        status("mysql://skylift@127.0.0.1:1/skylift", password="x", timeout=1)
    assert "Galera state" in err.value.what
    exc = pymysql.err.OperationalError(NOT_PRIMARY_ERROR, "WSREP has not yet prepared node")
    assert refused_as_not_primary(exc) and not refused_as_not_primary(ValueError("x"))


# --- a real cluster on lab namespace nodes ------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from skylift.lab.galera_lab import start_galera
    from skylift.lab.netns import LabNetwork, remove_lab_network

    with open(f"/run/skylift-test-netns-{BLOCK}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_lab_network(BLOCK)   # leftovers of an interrupted run
        base = tmp_path_factory.mktemp("galera")
        net = LabNetwork(BLOCK, base / "nodes")
        lab = None
        try:
            nodes = net.create(["db-1", "db-2", "db-3"])
            lab = start_galera(net, nodes, base / "galera")
            print(f"cluster formed: {fmt(lab.times)}")
            yield lab
            procs = [lm.proc for lm in lab.members if lm.proc]
            lab.remove_all()
            assert not [p for p in procs if p.alive()]
            assert not [lm for lm in lab.members if lm.member.home.exists()]
        finally:
            removed = remove_lab_network(BLOCK)   # ends every mariadbd with its namespace
            assert lab is None or not removed["killed"], removed   # remove_all ended them
            fcntl.flock(lock, fcntl.LOCK_UN)


def fmt(times: dict) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in times.items())


def engine(lab, lm, socket: bool = False) -> sa.Engine:
    db = Database.from_string(lab.url(lm, socket=socket), lab.password())
    return db.engine(poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5,
                                                               "read_timeout": 10})


def write(lab, lm, *values: str, socket: bool = False) -> None:
    eng = engine(lab, lm, socket)
    try:
        with eng.begin() as conn:
            for value in values:
                conn.execute(sa.text("INSERT INTO ha_rows (value, via) VALUES (:v, :m)"),
                             {"v": value, "m": lm.name})
    finally:
        eng.dispose()


def rows(lab, lm, socket: bool = True) -> set[str]:
    eng = engine(lab, lm, socket)
    try:
        with eng.connect() as conn:
            return set(conn.execute(sa.text("SELECT value FROM ha_rows")).scalars())
    finally:
        eng.dispose()


def sizes(lab, members) -> dict:
    return {lm.name: (s.cluster_status, s.cluster_size, s.local_state_comment)
            for lm, s in ((lm, lab.status(lm)) for lm in members)}


def test_three_members_form_one_primary_cluster(cluster):
    lab = cluster
    assert lab.times["total"] < 60, fmt(lab.times)
    for lm in lab.members:
        st = status(lab.url(lm), password=lab.password())   # the product's view, over TCP
        assert (st.healthy, st.cluster_size, st.cluster_status) == (True, 3, "Primary"), st
        assert st.finding(expected_size=3) is None
        assert lm.member.cnf.stat().st_mode & 0o777 == 0o600
        # the member runs inside its node's namespace (remove_lab_network ends it)
        ns = subprocess.run(["ip", "netns", "identify", str(lm.proc.pid)],
                            capture_output=True, text=True).stdout.strip()
        assert ns == lm.node.netns
    assert lab.password_file.stat().st_mode & 0o777 == 0o600
    assert lab.transfers["db-2"] == lab.transfers["db-3"] == "SST"
    password = lab.password()
    for lm in lab.members:   # the password never went onto a command line
        assert password.encode() not in Path(f"/proc/{lm.proc.pid}/cmdline").read_bytes()


def test_a_row_written_on_member_1_is_read_on_member_3(cluster):
    lab = cluster
    one, _, three = lab.members
    eng = engine(lab, one)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS ha_rows (id INT AUTO_INCREMENT "
                             "PRIMARY KEY, value VARCHAR(64) NOT NULL, via VARCHAR(16))"))
    eng.dispose()
    write(lab, one, "from-1")
    assert "from-1" in rows(lab, three, socket=False)


def test_a_killed_member_leaves_a_primary_majority_and_rejoins_with_every_row(cluster):
    lab = cluster
    one, two, three = lab.members
    lab.stop_member(two, kill=True)                            # kill -9
    t = time.monotonic()
    lab.wait([one, three], lambda s: s.healthy and s.cluster_size == 2, 20, "in a cluster of 2")
    print(f"kill -9 {two.name}: view of 2 after {time.monotonic() - t:.1f}s")
    assert sizes(lab, [one, three]) == {"db-1": ("Primary", 2, "Synced"),
                                       "db-3": ("Primary", 2, "Synced")}
    write(lab, one, "while-2-down-a")
    write(lab, three, "while-2-down-b")
    took = lab.start_member(two)
    lab.wait_synced(lab.members, size=3, timeout=20)
    print(f"{two.name} rejoined in {took:.1f}s by {lab.transfers[two.name] or '?'}")
    assert {"from-1", "while-2-down-a", "while-2-down-b"} <= rows(lab, two)
    # its position recovered from InnoDB (--wsrep-recover): the others' gcache serves it
    assert lab.transfers[two.name] == "IST"


def test_a_cut_off_member_goes_non_primary_refuses_writes_and_rejoins(cluster):
    lab = cluster
    one, two, three = lab.members
    lab.cut(three)
    try:
        t = time.monotonic()
        lab.wait([three], lambda s: not s.primary, 20, "non-Primary")
        lab.wait([one, two], lambda s: s.healthy and s.cluster_size == 2, 20,
                 "in a cluster of 2")
        print(f"cut {three.name}: non-Primary after {time.monotonic() - t:.1f}s")
        st = lab.status(three)
        assert (st.cluster_status, st.ready, st.healthy) == ("non-Primary", False, False)
        assert "not in the Primary component" in st.finding()
        with pytest.raises(sa.exc.OperationalError) as refused:   # over its socket
            write(lab, three, "on-the-minority", socket=True)
        assert refused_as_not_primary(refused.value), refused.value
        assert status(lab.url(three, socket=True), password=lab.password()).cluster_status \
            == "non-Primary"
        write(lab, one, "while-3-cut-a")
        write(lab, two, "while-3-cut-b")
    finally:
        lab.restore(three)
    t = time.monotonic()
    lab.wait_synced(lab.members, size=3, timeout=30)
    print(f"{three.name} rejoined {time.monotonic() - t:.1f}s after its link came back, "
          f"by {lab.transfers[three.name]}")
    assert lab.transfers[three.name] == "IST"
    seen = rows(lab, three)
    assert {"from-1", "while-2-down-a", "while-3-cut-a", "while-3-cut-b"} <= seen
    assert "on-the-minority" not in seen and "on-the-minority" not in rows(lab, one)


def test_a_cleanly_stopped_member_rejoins_by_ist_without_recovery(cluster):
    """The bootstrap member too: it comes back as a joiner, never with --wsrep-new-cluster."""
    lab = cluster
    one, two, three = lab.members
    lab.stop_member(one)                                       # SIGTERM: it leaves cleanly
    assert lab.saved_seqno(one) > 0                            # its position is saved
    lab.wait([two, three], lambda s: s.healthy and s.cluster_size == 2, 20, "in a cluster of 2")
    write(lab, two, "while-1-stopped")
    took = lab.start_member(one)
    lab.wait_synced(lab.members, size=3, timeout=20)
    print(f"{one.name} (stopped cleanly) rejoined in {took:.1f}s by {lab.transfers[one.name]}")
    assert lab.transfers[one.name] == "IST"
    assert "while-1-stopped" in rows(lab, one)
