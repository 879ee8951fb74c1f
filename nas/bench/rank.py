"""Rank agreement of two scorings of the same points: Kendall's tau-b, Spearman's rho, a
bootstrap confidence interval for either, and what picking a score's top k would find."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either ranking corrected for, as scipy.stats.kendalltau does)."""
    _check(x, y)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else math.nan


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (ties get their average rank)."""
    _check(x, y)
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / var if var else math.nan


def bootstrap_ci(x: Sequence[float], y: Sequence[float],
                 statistic: Callable[[Sequence[float], Sequence[float]], float],
                 samples: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of `statistic` over resampled points (pairs kept together)."""
    _check(x, y)
    rng = random.Random(seed)
    values = []
    for _ in range(samples):
        picks = [rng.randrange(len(x)) for _ in x]
        value = statistic([x[i] for i in picks], [y[i] for i in picks])
        if not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    values.sort()
    low = values[int((1 - level) / 2 * (len(values) - 1))]
    high = values[int((1 + level) / 2 * (len(values) - 1))]
    return low, high


def top(values: Sequence[float], k: int) -> list[int]:
    """Indices of the k highest values (ties to the lower index)."""
    return sorted(range(len(values)), key=lambda i: (-values[i], i))[:k]


def precision_at(score: Sequence[float], truth: Sequence[float], fraction: float = 0.1) -> float:
    """Share of the score's top `fraction` of points that are in the truth's top `fraction`."""
    _check(score, truth)
    k = max(1, round(fraction * len(truth)))
    return len(set(top(score, k)) & set(top(truth, k))) / k


def regret(score: Sequence[float], truth: Sequence[float], k: int = 1) -> float:
    """The truth's best minus the best truth among the score's top k (0 = found the best)."""
    _check(score, truth)
    return max(truth) - max(truth[i] for i in top(score, k))


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _check(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"rank agreement needs two equally long scorings of >= 2 points, got"
                         f" {len(x)} and {len(y)}")
