"""The multi-MN upgrade's usage mistakes: exit 2 with what to do, before anything is read or
changed; and the member command's own (`python -m skylift.upgrade.member`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skylift.ha_record import HaConfig, HaMember
from tests_support import run_cli

ARTS = ["--image", "os.tar", "--installer", "inst.tar", "--tool", "tool.pyz"]


@pytest.fixture
def ha_home(skylift_home):
    skylift_home.mkdir(parents=True, exist_ok=True)
    HaConfig(vip="198.18.200.250", members=[HaMember("mn-1", "198.18.200.11"),
                                            HaMember("mn-2", "198.18.200.12")]
             ).save(skylift_home)
    return skylift_home


def test_an_ha_cloud_needs_the_ha_suite(capsys, ha_home):
    code, out, err = run_cli(capsys, "upgrade", "run", "--offline", *ARTS)
    assert code == 2
    assert "HA suite" in err and "--ha-suite" in err
    assert not (ha_home / "upgrade").exists()


def test_an_ha_cloud_is_not_upgraded_from_the_online_repository(capsys, ha_home):
    code, out, err = run_cli(capsys, "upgrade", "run", "--incremental", "--repo-url",
                             "http://127.0.0.1:1/", "--ha-suite", "ha.tar")
    assert code == 2
    assert "from files" in err and "--offline" in err


def test_the_ha_suite_is_refused_for_a_lone_mn(capsys, skylift_home):
    code, out, err = run_cli(capsys, "upgrade", "run", "--offline", *ARTS,
                             "--ha-suite", "ha.tar")
    assert code == 2
    assert "this MN is alone" in err


def test_the_plan_of_an_ha_cloud_is_the_multi_mn_procedure(capsys, ha_home):
    code, out, err = run_cli(capsys, "upgrade", "plan", "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["id"] == "upgrade-multi-mn"
    steps = [s["id"] for p in plan["phases"] for s in p["steps"]]
    assert steps.index("mns-to-maintenance") < steps.index("migrate-database") < \
        steps.index("mns-to-new")


def member(*argv: str, stdin: str = "{}") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skylift.upgrade.member", *argv],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_the_member_command_names_its_operations_and_exits_2():
    for argv in ([], ["no-such-op"], ["status", "extra"]):
        done = member(*argv)
        assert done.returncode == 2
        assert "to-maintenance" in done.stderr and done.stdout == ""


def test_the_member_command_refuses_an_order_it_does_not_understand(skylift_home):
    done = member("status", stdin='{"run_id": "r", "target": "4.3.12", "surprise": 1}')
    assert done.returncode == 2
    err = json.loads(done.stderr.strip().splitlines()[-1])
    assert "order" in err["what"] and err["next"]
