"""How faithfully a score ranks a bench's points: rank correlations, top-k precision, regret."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (what Spearman's rho correlates)."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(1, len(v) + 1)
    for value in np.unique(v):  # average the ranks of each tied group
        tied = v == value
        r[tied] = r[tied].mean()
    return r


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks (NaN if one is constant)."""
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denominator) if denominator else float("nan")


def kendall(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) pairs over sqrt of the untied pairs of each."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    upper = np.triu_indices(len(x), k=1)
    sx = np.sign(x[:, None] - x[None, :])[upper]
    sy = np.sign(y[:, None] - y[None, :])[upper]
    denominator = np.sqrt(np.count_nonzero(sx) * np.count_nonzero(sy))
    return float((sx * sy).sum() / denominator) if denominator else float("nan")


def bootstrap_ci(x: Sequence[float], y: Sequence[float], statistic, samples: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of a statistic over points resampled with replacement."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        pick = rng.integers(0, len(x), len(x))
        value = statistic(x[pick], y[pick])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def top(values: Sequence[float], k: int) -> list[int]:
    """Indices of the k highest values (ties to the lower index)."""
    v = np.asarray(values, dtype=float)
    return sorted(range(len(v)), key=lambda i: (-v[i], i))[:k]


def precision_at(score: Sequence[float], truth: Sequence[float], fraction: float = 0.1) -> float:
    """Share of the score's top `fraction` of points that are in the truth's top `fraction`."""
    k = max(1, round(fraction * len(truth)))
    return len(set(top(score, k)) & set(top(truth, k))) / k


def regret(score: Sequence[float], truth: Sequence[float], k: int = 1) -> float:
    """The truth's best minus the best truth among the score's top k (0 = found the best)."""
    t = np.asarray(truth, dtype=float)
    return float(t.max() - max(t[i] for i in top(score, k)))
