"""Rank fidelity statistics against examples worked by hand."""

from __future__ import annotations

import math

import pytest

from nas.bench.ranking import (
    bootstrap_ci,
    kendall,
    precision_at,
    ranks,
    regret,
    spearman,
    top,
)


def test_kendall_tau_b_counts_concordant_and_discordant_pairs():
    # x = 1 2 3 4, y = 1 3 2 4: of 6 pairs only (2, 3) is discordant: (5 - 1) / 6.
    assert kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # ties: x = 1 1 2, y = 1 2 3: pairs (1,2) tied in x, (1,3) and (2,3) concordant;
    # tau-b = 2 / sqrt(2 * 3)
    assert kendall([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert kendall([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall([1, 1, 1], [1, 2, 3]))


def test_spearman_rho_is_the_correlation_of_average_ranks():
    # ranks of y = 1 3 2 4; d = 0 1 1 0: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([10, 20, 30, 40], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert list(ranks([5, 1, 5, 3])) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3], [2, 4, 9]) == pytest.approx(1.0)


def test_precision_and_regret_of_a_ranking():
    truth = [0.50, 0.70, 0.60, 0.65, 0.40, 0.55, 0.45, 0.52, 0.58, 0.62]
    score = [0.10, 0.20, 0.90, 0.30, 0.00, 0.05, 0.01, 0.02, 0.03, 0.04]  # 2 first, then 3, 1
    assert top(score, 3) == [2, 3, 1]
    assert precision_at(score, truth, 0.1) == 0.0  # top-1 is index 2, the truth's is 1
    assert precision_at(score, truth, 0.3) == pytest.approx(2 / 3)  # {2,3,1} vs {1,3,9}
    assert regret(score, truth) == pytest.approx(0.10)
    assert regret(score, truth, k=3) == pytest.approx(0.0)


def test_bootstrap_interval_brackets_the_statistic():
    x = list(range(30))
    y = [v + (7 if v % 3 == 0 else 0) for v in x]
    low, high = bootstrap_ci(x, y, kendall, samples=300)
    assert low <= kendall(x, y) <= high < 1.0
