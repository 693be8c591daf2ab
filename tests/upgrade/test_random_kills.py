"""A fixed slice of the random-kill soak (tests/upgrade/kill_soak.py): kill -9 inside steps,
kill the resume too, and end as an uninterrupted run (or, rolled back, as the cloud was)."""

import pytest

from kill_soak import run_seed

SEEDS = [3, 7, 11]  # the full soak runs many more: scripts/soak-kill.sh


@pytest.mark.parametrize("seed", SEEDS)
def test_random_kills_inside_steps_converge(seed):
    result = run_seed(seed)
    assert result.kills, "no kill landed: the seed tests nothing"
    assert result.converged, result.line()
