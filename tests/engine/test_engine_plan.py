"""Plans: the tree rendering, JSON form, stable keys, selection of a phase, fingerprints."""

from __future__ import annotations

import json

import pytest

from skylift.engine import Phase, Plan, Step, step
from skylift.errors import PlanError


class Backup(Step):
    id = "backup-db"
    description = "dump the database to the backup folder"

    def run(self, ctx):
        ctx.append("backup")

    def undo(self, ctx):
        ctx.remove("backup")

    def estimate_seconds(self, ctx):
        return 90.0


def make_plan() -> Plan:
    return Plan("upgrade-demo", [
        Phase("preflight", "verify artefacts and settings", [
            step("verify", "verify the bundle", lambda c: None, estimate=5),
        ]),
        Phase("prepare", "turn VM HA off and back up", [
            step("ha-off", "turn VM HA off", lambda c: None, undo=lambda c: None),
            Backup(),
        ]),
        Phase("upgrade", "upgrade the management node", [
            step("migrate", "migrate the database", lambda c: None, point_of_no_return=True,
                 estimate=lambda c: 600),
        ]),
    ], description="a demo")


def test_render_tree_with_estimates_and_point_of_no_return():
    text = make_plan().render()
    assert text.splitlines() == [
        "plan upgrade-demo: a demo",
        "├─ preflight: verify artefacts and settings",
        "│  └─ verify: verify the bundle  [~5s]",
        "├─ prepare: turn VM HA off and back up",
        "│  ├─ ha-off: turn VM HA off",
        "│  └─ backup-db: dump the database to the backup folder  [~1m30s]",
        "└─ upgrade: upgrade the management node",
        "   └─ migrate: migrate the database  [~10m00s, POINT OF NO RETURN]",
        "3 phases, 4 steps, about 11m35s",
    ]


def test_steps_have_stable_keys():
    plan = make_plan()
    keys = [ps.key for ps in plan.steps()]
    assert keys == ["preflight/verify", "prepare/ha-off", "prepare/backup-db", "upgrade/migrate"]
    assert [ps.index for ps in plan.steps()] == [0, 1, 2, 3]
    assert plan.step("prepare/backup-db").step.description.startswith("dump")
    with pytest.raises(PlanError):
        plan.step("prepare/nope")


def test_to_dict_is_json_with_flags():
    data = make_plan().to_dict()
    json.dumps(data)
    assert data["estimate_seconds"] == 695
    steps = {s["key"]: s for p in data["phases"] for s in p["steps"]}
    assert steps["upgrade/migrate"]["point_of_no_return"]
    assert steps["prepare/ha-off"]["reversible"] and steps["prepare/backup-db"]["reversible"]
    assert not steps["preflight/verify"]["reversible"]


def test_select_a_phase_to_rerun_alone():
    plan = make_plan()
    sub = plan.select("prepare")
    assert [ps.key for ps in sub.steps()] == ["prepare/ha-off", "prepare/backup-db"]
    assert sub.fingerprint() != plan.fingerprint()
    assert [p.name for p in plan.select("upgrade", "preflight").phases] == ["preflight", "upgrade"]
    with pytest.raises(PlanError) as err:
        plan.select("prepar")
    assert "preflight, prepare, upgrade" in err.value.next


def test_fingerprint_is_stable_and_follows_the_shape():
    assert make_plan().fingerprint() == make_plan().fingerprint()
    other = make_plan()
    other.phases[1].steps.reverse()
    assert other.fingerprint() != make_plan().fingerprint()


@pytest.mark.parametrize("phases", [
    [Phase("a", "", []), Phase("a", "", [])],
    [Phase("a", "", [step("x", "", print), step("x", "", print)])],
    [Phase("a/b", "", [])],
    [Phase("a", "", [step("", "", print)])],
])
def test_malformed_plans_are_refused(phases):
    with pytest.raises(PlanError):
        Plan("bad", phases)


def test_failing_estimate_does_not_break_the_dry_run():
    def boom(ctx):
        raise RuntimeError("no inventory yet")

    plan = Plan("p", [Phase("a", "A", [step("x", "X", print, estimate=boom)])])
    assert "x: X" in plan.render() and plan.estimate_seconds() is None
