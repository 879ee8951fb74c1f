"""Pareto fronts of accuracy (higher is better) against a cost (lower is better)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def front_ranks(scores: Sequence[float], costs: Sequence[float]) -> list[int]:
    """Each point's front: 1 for the points no other beats on both score and cost, 2 for those
    left once front 1 is removed, and so on (non-dominated sorting, NSGA-II's ranking). A NaN
    score or cost puts a point behind every front."""
    if len(scores) != len(costs):
        raise ValueError(f"{len(scores)} scores but {len(costs)} costs")
    valid = [i for i in range(len(scores)) if not (math.isnan(scores[i]) or math.isnan(costs[i]))]
    ranks = [0] * len(scores)
    tops: list[tuple[float, float]] = []  # per front: its highest score so far, with its cost
    # by cost, then best score first: a point can only be beaten by one seen before it, and in
    # two dimensions the best-scoring point of a front beats it when any point of that front does
    for i in sorted(valid, key=lambda i: (costs[i], -scores[i])):
        front = next((k for k, (score, cost) in enumerate(tops)
                      if not (score > scores[i] or (score == scores[i] and cost < costs[i]))),
                     len(tops))
        if front == len(tops):
            tops.append((scores[i], costs[i]))
        tops[front] = (scores[i], costs[i])  # not beaten: it scores at least the front's best
        ranks[i] = front + 1
    return [rank or len(tops) + 1 for rank in ranks]


def on_front(scores: Sequence[float], costs: Sequence[float]) -> list[bool]:
    """Whether each point is on the first front."""
    return [rank == 1 for rank in front_ranks(scores, costs)]
