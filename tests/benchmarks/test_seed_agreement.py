"""Seed-to-seed agreement on a hand-made four-seed truth: tau per seed pair and per split into
two-seed means, computed by hand."""

import pytest

from benchmarks import seed_agreement as sa
from tests.benchmarks.test_search_strategies import hand_truth

# seeds 0 and 1 agree on a > b > c > d; seed 2 swaps a and b; seed 3 swaps c and d
TRUTH = hand_truth({"a": [0.60, 0.60, 0.50, 0.60], "b": [0.50, 0.50, 0.60, 0.50],
                    "c": [0.40, 0.40, 0.40, 0.30], "d": [0.30, 0.30, 0.30, 0.40],
                    "e": [0.20, 0.20]})  # two seeds only: left out


def test_the_points_with_every_seed_and_their_finals():
    keys, seeds, acc = sa.finals(TRUTH)
    assert (keys, seeds) == (["a", "b", "c", "d"], [0, 1, 2, 3])
    assert acc["b"][2] == 0.60


def test_tau_per_seed_pair_and_per_split_by_hand():
    text = sa.report(TRUTH)
    # 0 vs 1: all 6 pairs concordant; 0 vs 2: a-b discordant, 5 - 1 = 4 of 6
    assert "| seed 0 vs seed 1 | 1.000 |" in text
    assert "| seed 0 vs seed 2 | 0.667 |" in text
    assert "| seed 2 vs seed 3 | 0.333 |" in text  # both swaps: 4 - 2 = 2 of 6
    # (0, 1) vs (2, 3): means a .60/.55, b .50/.55 (tied), c .40/.35, d .30/.35 (tied):
    # tau-b with two ties in y: 4 concordant / sqrt(4 * 6)
    assert f"| mean of (0, 1) vs mean of (2, 3) | {4 / 24 ** 0.5:.3f} |" in text
    assert sa.halves([0, 1, 2, 3]) == [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]
    # all-seed means: a .575, b .525; a ranks 2nd under seed 2
    assert "`a` 57.50 %; its rank under each single seed: seed 0: 1, seed 1: 1, seed 2: 2," \
        " seed 3: 1." in text


def test_too_few_points_with_every_seed_is_one_line():
    with pytest.raises(SystemExit, match="need >= 3 points"):
        sa.report(hand_truth({"a": [0.5, 0.6], "b": [0.4, 0.5]}))
