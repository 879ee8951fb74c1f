"""A trials table read for the answer: seeds pooled per point, costs, race candidates."""

import pytest

from nas.answer.data import candidates, points_at, run_cost
from tests.answer.answerkit import EPOCHS, trials_table


def test_points_pool_their_seeds_over_rows_at_one_fidelity():
    table = trials_table()
    final = points_at(table, EPOCHS)
    assert set(final) == {"g1-dw", "g1-pw", "g4-dw", "g4-pw", "g32-dw", "g32-pw"}
    assert final["g4-pw"].accs == (0.605, 0.615, 0.620) and final["g4-pw"].seeds == (0, 1, 5)
    assert final["g4-pw"].levels == {"s1_groups": "4", "s2_groups": "8", "s1_order": "pw_dw",
                                     "s2_order": "pw_dw"}
    assert final["g4-pw"].widths == {1: 32, 2: 64}
    early = points_at(table, 1)  # the stopped point counts at its own epoch
    assert early["g8-pw"].accs == (0.45,) and early["g1-dw"].accs == pytest.approx((0.36, 0.38))
    # the same row twice is the same seeds: no new data
    twice = points_at(trials_table().iloc[[0, 0]], EPOCHS)
    assert twice["g1-dw"].accs == (0.56, 0.58)


def test_cost_counts_every_row_and_every_trained_seed():
    cost = run_cost(trials_table(), cores_per_trial=2.0)
    # 8 rows of 70 s and the failed one of 5 s, at 2 cores; seeds: 6 · 2 + 1 + 1
    assert cost.core_s == pytest.approx(2 * (8 * 70.0 + 5.0))
    assert cost.trials == 9 and cost.seeds == 14


def test_candidates_for_a_race():
    found = {c.key: c for c in candidates(trials_table(), EPOCHS)}
    assert found["g4-pw"].accs == (0.605, 0.615, 0.620) and found["g4-pw"].seeds == (0, 1, 5)
    # per seed: 3 epochs of 20 s summed over 2 seeds = 30 s for one seed's full budget
    assert found["g1-dw"].cost_s == pytest.approx(30.0)
    stopped = found["g8-pw"]
    assert stopped.stopped and stopped.accs == () and stopped.curve == (0.45,)
    assert stopped.cost_s == pytest.approx(60.0)  # one epoch of 20 s, scaled to 3 epochs
    assert "bad" not in found
