"""Refusals change nothing, exit 2 and leave nothing that blocks the next run; a finished or
up-to-date cloud is told so; a downgrade is named as one."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from skylift.lab.artefacts import build_for_upgrade
from skylift.lineage import NEWEST
from skylift.upgrade.context import Artefacts
from test_single_mn import expected_end_state
from upgrade_world import World

_names = itertools.count()


@pytest.fixture
def make_world():
    made = []

    def make(release: str = "3.7.1") -> World:
        made.append(World(f"rf{next(_names)}", release=release))
        return made[-1]

    yield make
    from skylift.lab.installation import down

    for w in made:
        down(w.state["name"])


def copy_of(arts: Artefacts, dest: Path) -> Artefacts:
    """The artefacts and their sidecar files, copied to a folder of their own."""
    dest.mkdir(parents=True)
    for f in arts.image.parent.iterdir():
        shutil.copy2(f, dest / f.name)
    return Artefacts(dest / arts.image.name, dest / arts.installer.name, dest / arts.tool.name)


def argv(arts: Artefacts) -> list[str]:
    return ["upgrade", "run", "--offline", "--image", str(arts.image), "--installer",
            str(arts.installer), "--tool", str(arts.tool)]


def unchanged(world: World) -> dict:
    """What a refusal must leave as it was."""
    version = world.mn_version()
    return {"ha": world.setting("ha", "enable"), "inventory_same":
            world.digests() == world.before_digests, "mn_pid": version["pid"],
            "release": version["release"], "mn_listeners": world.mn_listeners(),
            "backups": sorted(p.name for p in (world.mn_home / "backups").glob("*")
                              if "pre-upgrade" in p.name)}


def damaged(world: World, tmp_path: Path) -> dict[str, Artefacts]:
    """Artefact sets a careless download or an impostor would give, one problem each."""
    out = {}
    truncated = copy_of(world.arts, tmp_path / "truncated")
    data = truncated.image.read_bytes()
    truncated.image.write_bytes(data[: len(data) // 2])
    out["truncated image"] = truncated
    flipped = copy_of(world.arts, tmp_path / "flipped")
    data = bytearray(flipped.installer.read_bytes())
    data[len(data) // 3] ^= 0x01
    flipped.installer.write_bytes(bytes(data))
    out["flipped byte"] = flipped
    # signed by a key of another machine: this cloud does not trust it
    out["untrusted key"] = build_for_upgrade(tmp_path / "impostor")
    out["older release"] = build_for_upgrade(world.mn_home, release="3.7.1")
    return out


def test_a_refused_run_changes_nothing_exits_2_and_the_next_run_starts_clean(make_world,
                                                                            tmp_path):
    world = make_world()
    before = unchanged(world)
    for problem, arts in damaged(world, tmp_path).items():
        out = world.skylift(*argv(arts))
        assert out.returncode == 2, (problem, out.stdout + out.stderr)
        assert "Traceback" not in out.stderr
        assert unchanged(world) == before, problem
        st = json.loads(world.skylift("upgrade", "status", "--json").stdout)
        assert st["status"] == "refused", problem
        # a refused run is not something to resume or roll back
        assert world.skylift("upgrade", "resume").returncode == 0
        assert world.skylift("upgrade", "rollback", "--yes").returncode == 2
        assert unchanged(world) == before, problem

    out = world.skylift(*world.upgrade_argv())

    assert out.returncode == 0, out.stdout + out.stderr
    assert world.end_state() == expected_end_state(world)


def test_the_refusal_names_the_damaged_file_and_counts_files(make_world, tmp_path):
    world = make_world()
    arts = damaged(world, tmp_path)["truncated image"]
    out = world.skylift("upgrade", "check", "--json", "--image", str(arts.image),
                        "--installer", str(arts.installer), "--tool", str(arts.tool))
    report = json.loads(out.stdout)
    assert out.returncode == 2
    refused = [f for f in report["findings"] if f["check_id"] == "artefacts-verified"]
    assert len(refused) == 1 and arts.image.name in refused[0]["summary"]


@pytest.mark.parametrize("cloud", ["4.0.0", NEWEST.version])
def test_artefacts_of_an_older_release_are_refused_as_a_downgrade(make_world, cloud):
    world = make_world(cloud)
    old = build_for_upgrade(world.mn_home, release="3.7.1")
    out = world.skylift("upgrade", "check", "--json", "--image", str(old.image),
                        "--installer", str(old.installer), "--tool", str(old.tool))
    report = json.loads(out.stdout)
    by_check = {f["check_id"]: f for f in report["findings"]}

    assert out.returncode == 2
    assert by_check["no-downgrade"]["severity"] == "inhibitor"
    assert "downgrade" in by_check["no-downgrade"]["summary"]
    assert "artefacts-verified" not in by_check  # they are genuine, only older
    assert "lineage" not in by_check  # no "goes from ... to ..." for a downgrade

    run = world.skylift(*argv(old))
    assert run.returncode == 2
    assert "downgrade" in run.stderr
    assert world.mn_version()["release"] == cloud


def test_after_a_finished_upgrade_resume_rollback_and_run_say_where_it_stands(make_world):
    world = make_world()
    assert world.skylift(*world.upgrade_argv()).returncode == 0
    mn = world.mn_version()
    backups = sorted((world.mn_home / "backups").iterdir())

    resumed = world.skylift("upgrade", "resume", "--json")
    assert resumed.returncode == 0
    said = json.loads(resumed.stdout)
    assert (said["resumed"], said["status"]) == (False, "ok")

    rolled = world.skylift("upgrade", "rollback", "--yes")
    assert rolled.returncode == 2
    assert "db restore" in rolled.stderr  # the way back that remains, with the dump's path

    again = world.skylift(*world.upgrade_argv(), "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["upgraded"] is False
    # nothing was done: the same MN process, no new dump
    assert world.mn_version()["pid"] == mn["pid"]
    assert sorted((world.mn_home / "backups").iterdir()) == backups
    assert world.end_state() == expected_end_state(world)


def test_check_with_no_cloud_is_one_inhibitor_and_exit_2(tmp_path):
    import os
    import subprocess
    import sys

    home = tmp_path / "empty-home"
    out = subprocess.run([sys.executable, "-m", "skylift.cli.main", "upgrade", "check",
                          "--json"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         env=dict(os.environ, SKYLIFT_HOME=str(home)), timeout=120)
    report = json.loads(out.stdout)

    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert [f["severity"] for f in report["findings"]] == ["inhibitor"]
    assert report["counts"]["skipped"] == len(report["checks"]) - 1
    assert not (home / "skylift.db").exists()  # a check creates no database


def test_plan_shows_estimates_for_a_cloud(make_world):
    world = make_world()
    out = world.skylift("upgrade", "plan", "--json")
    plan = json.loads(out.stdout)

    assert out.returncode == 0
    steps = [s for p in plan["phases"] for s in p["steps"]]
    assert all(s["estimate_seconds"] is not None for s in steps), steps
    assert plan["estimate_seconds"] == pytest.approx(sum(s["estimate_seconds"] for s in steps))


def test_resume_takes_a_new_copy_of_an_artefact_the_run_failed_on(make_world, tmp_path):
    world = make_world()
    good = copy_of(world.arts, tmp_path / "good")
    killed = world.run_until_killed("started", "management-node/install-software")
    assert killed.returncode == -9
    data = world.arts.installer.read_bytes()  # the file the run was given goes bad
    world.arts.installer.write_bytes(data[: len(data) // 2])

    failed = world.skylift("upgrade", "resume")
    assert failed.returncode == 1
    assert world.arts.installer.name in failed.stderr and "truncated" in failed.stderr

    resumed = world.skylift("upgrade", "resume", "--installer", str(good.installer))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert world.end_state() == expected_end_state(world)
    # the journal remembers the new copy: a later resume would use it too
    from skylift.upgrade.single_mn import last_params

    assert last_params(world.mn_home)["artefacts"]["installer"] == str(good.installer)
