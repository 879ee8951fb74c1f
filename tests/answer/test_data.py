"""A trials table read for the answer: seeds pooled per point, costs, race candidates."""

import json

import pytest

from nas.answer.answer import build_answer
from nas.answer.data import candidates, points_at, run_cost
from nas.results.names import SEED_HELD_OUT_ACCS
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


def test_a_scores_column_measures_the_full_budget_instead_of_the_curves():
    """[verify].held_out: full-budget seeds scored by seed_held_out_accs; a row without it is
    no measurement (two sets of images are never compared); other fidelities keep the curves."""
    table = trials_table()
    # every completed seed scores 5 pt less on the held-out images than its last epoch
    table[SEED_HELD_OUT_ACCS] = [
        json.dumps([round(c[-1] - 0.05, 4) for c in json.loads(curves)])
        if status == "completed" else None
        for curves, status in zip(table["seed_curves"], table["status"], strict=True)]
    table.loc[table["trial_id"] == "t-g1-dw", SEED_HELD_OUT_ACCS] = None
    final = points_at(table, EPOCHS, scores=SEED_HELD_OUT_ACCS)
    assert "g1-dw" not in final  # completed, but never scored on the held-out images
    assert final["g4-pw"].accs == pytest.approx((0.555, 0.565, 0.570))
    assert final["g4-pw"].seeds == (0, 1, 5)
    found = {c.key: c for c in candidates(table, EPOCHS, scores=SEED_HELD_OUT_ACCS)}
    assert found["g4-pw"].accs == final["g4-pw"].accs and found["g8-pw"].stopped
    answer = build_answer(table, EPOCHS, scores=SEED_HELD_OUT_ACCS)
    for entry in answer.tier:
        assert entry.mean.estimate == pytest.approx(sum(final[entry.key].accs)
                                                    / len(final[entry.key].accs))
    table.loc[table["trial_id"] == "t-g4-dw", SEED_HELD_OUT_ACCS] = "[0.5]"  # 1 value, 2 seeds
    with pytest.raises(ValueError, match="t-g4-dw: seed_held_out_accs holds 1 values for 2"):
        points_at(table, EPOCHS, scores=SEED_HELD_OUT_ACCS)
