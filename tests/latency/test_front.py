"""Pareto fronts of accuracy against a cost: non-dominated sorting, ties and NaN."""

import math
import random

from nas.latency.front import front_ranks, on_front


def _by_definition(scores, costs):
    """Peel fronts off by checking every pair: the slow, obvious way."""
    ranks, left, front = [0] * len(scores), list(range(len(scores))), 0
    while left:
        front += 1
        on = [i for i in left if not any(
            scores[j] >= scores[i] and costs[j] <= costs[i]
            and (scores[j] > scores[i] or costs[j] < costs[i]) for j in left)]
        for i in on:
            ranks[i] = front
        left = [i for i in left if not ranks[i]]
    return ranks


def test_fronts_match_their_definition_on_random_points_with_ties():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 25)
        scores = [rng.randint(0, 5) for _ in range(n)]
        costs = [rng.randint(0, 5) for _ in range(n)]
        assert front_ranks(scores, costs) == _by_definition(scores, costs)


def test_a_faster_worse_point_and_a_slower_better_one_share_the_first_front():
    assert front_ranks([0.6, 0.5, 0.55, 0.6], [2.0, 1.0, 2.0, 2.0]) == [1, 1, 2, 1]
    assert on_front([0.6, 0.5, 0.4], [2.0, 1.0, 1.5]) == [True, True, False]


def test_a_nan_point_is_behind_every_front():
    assert front_ranks([0.5, math.nan, 0.4], [1.0, 0.5, 2.0]) == [1, 3, 2]
