"""Several MNs on one database share the resources out by consistent hashing: each drives its
share; when one dies its share falls to the others, and no VM restarts."""

from __future__ import annotations

import itertools
import uuid as uuidlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from skylift.agent.hypervisor import probe
from skylift.db.engine import Database
from skylift.lab.installation import LabSpec, down, up
from skylift.agent.launch import free_port
from skylift.mn.launch import MnHandle, kill_mn, mn_client, start_mn, stop_mn
from skylift.mn.ownership import HashRing
from skylift.processes import pid_alive
from tests_support import wait_for

KEYS = [uuidlib.UUID(int=i * 7919 + 13).hex for i in range(6000)]


def test_shares_are_even_and_a_member_leaving_moves_only_its_own():
    three = HashRing(["a" * 32, "b" * 32, "c" * 32])
    shares = three.shares(KEYS)
    assert all(abs(n - 2000) < 300 for n in shares.values()), shares
    two = HashRing(["a" * 32, "c" * 32])
    moved = [k for k in KEYS if three.owner(k) != two.owner(k)]
    assert {three.owner(k) for k in moved} == {"b" * 32}  # only b's keys move
    assert len(moved) == shares["b" * 32]


def test_a_member_joining_takes_about_a_share_from_each_and_nothing_else_moves():
    two = HashRing(["a" * 32, "b" * 32])
    three = HashRing(["a" * 32, "b" * 32, "c" * 32])
    moved = [k for k in KEYS if two.owner(k) != three.owner(k)]
    assert {three.owner(k) for k in moved} == {"c" * 32}  # everything that moves goes to c
    assert abs(len(moved) - len(KEYS) / 3) < 400


_names = itertools.count()


def statuses(db: Database) -> dict[str, str]:
    eng = db.engine()
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, status FROM hosts")).all()
    eng.dispose()
    return dict(rows)


def members(handle: MnHandle, home: Path) -> dict:
    with mn_client(handle.url, None, 5.0, home=home) as c:
        return c.get("/v1/management-nodes", headers=_auth(home)).json()


def _auth(home: Path) -> dict:
    return {"Authorization": "Bearer " + (home / "mn" / "admin-token").read_text().strip()}


@pytest.mark.slow
def test_two_mns_share_the_hosts_and_the_survivor_takes_the_dead_ones_share(make_db):
    db = make_db("mysql")
    url = db.url.render_as_string(hide_password=False)
    name = f"own{next(_names)}"
    state = up(LabSpec(name=name, release="4.3.12", hosts=6, vms=4, db_url=url))
    home = Path(state["mn"]["home"])
    handles: list[MnHandle] = []
    try:
        stop_mn(MnHandle(state["mn"]["pid"], "127.0.0.1", 0, "", "", Path(state["mn"]["log"]),
                         home), timeout=20)  # the lab's single MN: two sharing MNs instead
        env = {"SKYLIFT_HOME": str(home)}
        for _ in range(2):
            handles.append(start_mn(url, port=free_port(), env=env, node_root=home / "node",
                                    timeout=60, share_hosts=True))
        a, b = handles
        total = members(a, home)["resources"]
        both = wait_for(lambda: (lambda v: v if len(v["items"]) == 2 else None)(
            members(a, home)), 15, "two members")
        shares = {i["uuid"]: i["resources_owned"] for i in both["items"]}
        assert sum(shares.values()) == total and all(shares.values())
        hosts = len(statuses(db))
        wait_for(lambda: set(statuses(db).values()) == {"Connected"}, 30, "every host Connected")

        def driven(h: MnHandle) -> int:
            with mn_client(h.url, None, 5.0, home=home) as c:
                return c.get("/v1/connections", headers=_auth(home)).json()["total"]

        # each drives its share, nobody twice (a member sees the other within its next look)
        wait_for(lambda: driven(a) + driven(b) == total and driven(a) and driven(b), 10,
                 "each MN driving only its share")
        kill_mn(b)
        assert not pid_alive(b.pid)
        wait_for(lambda: len(members(a, home)["items"]) == 1, 10, "the dead MN gone")
        wait_for(lambda: driven(a) == total, 10, "the survivor driving every resource")
        wait_for(lambda: set(statuses(db).values()) == {"Connected"}, 30,
                 "every host Connected again")
        assert len(statuses(db)) == hosts
        assert all(probe(vm["endpoint"]) == vm["boot_id"] for vm in state["vms"])
    finally:
        for h in handles:
            if pid_alive(h.pid):
                stop_mn(h, timeout=20)
        down(name)
