"""Rank agreement against values worked out by hand."""

import math

import pytest

from nas.bench.rank import bootstrap_ci, kendall_tau, precision_at, regret, spearman_rho, top

X = [1, 2, 3, 4, 5]
Y = [3, 4, 1, 2, 5]  # 6 concordant and 4 discordant pairs; rank differences -2 -2 2 2 0


def test_kendall_and_spearman_by_hand():
    assert kendall_tau(X, Y) == pytest.approx((6 - 4) / 10)
    assert spearman_rho(X, Y) == pytest.approx(1 - 6 * 16 / (5 * (25 - 1)))
    assert kendall_tau(X, X) == 1 and kendall_tau(X, X[::-1]) == -1
    assert spearman_rho(X, [10 * v for v in X]) == pytest.approx(1)


def test_ties_follow_tau_b_and_average_ranks():
    # one pair tied in x only, two concordant: tau-b = 2 / sqrt(3 * 2)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert spearman_rho([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(kendall_tau([1, 1], [2, 2]))


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    x = list(range(30))
    y = [v + (7 if v % 5 == 0 else 0) for v in x]
    low, high = bootstrap_ci(x, y, kendall_tau, samples=300)
    assert low <= kendall_tau(x, y) <= high < 1.0
    assert (low, high) == bootstrap_ci(x, y, kendall_tau, samples=300)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="two equally long scorings"):
        kendall_tau([1, 2], [1])


def test_precision_and_regret_of_a_ranking():
    truth = [0.50, 0.70, 0.60, 0.65, 0.40, 0.55, 0.45, 0.52, 0.58, 0.62]
    score = [0.10, 0.20, 0.90, 0.30, 0.00, 0.05, 0.01, 0.02, 0.03, 0.04]  # 2 first, then 3, 1
    assert top(score, 3) == [2, 3, 1]
    assert precision_at(score, truth, 0.1) == 0.0  # top-1 is index 2, the truth's is 1
    assert precision_at(score, truth, 0.3) == pytest.approx(2 / 3)  # {2,3,1} vs {1,3,9}
    assert regret(score, truth) == pytest.approx(0.10)
    assert regret(score, truth, k=3) == pytest.approx(0.0)
