"""What each factor of each stage is worth: an additive OLS over one-hot factor levels on the
points' mean accuracies (pooled-seed-noise or HC2-robust intervals), or matched pairs; when the
points are too few for a level per stage, one effect per field pooled over the stages."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nas.answer.data import FIELDS, PointData, points_at
from nas.answer.stats import Interval, Noise, interval, pooled_noise

METHODS = ("pooled", "robust", "pairs")


@dataclass(frozen=True)
class Factor:
    """One field (groups, order, ...) over the stages whose columns move together in the data
    (stages sharing a choice cannot be told apart, so they are one factor)."""

    field: str
    stages: tuple[int, ...]
    levels: tuple[str, ...]  # 'a/b/c' over the stages, best-ordered for reading
    of: dict[str, str]  # point key -> level ('a/b/c' per stage when pooled)
    # pooled: point key -> how many of the stages take each level; an effect is then what
    # switching one stage from the best level to another is worth, the same in every stage
    dose: dict[str, dict[str, int]] | None = None

    @property
    def pooled(self) -> bool:
        return self.dose is not None

    @property
    def name(self) -> str:
        return f"{'pooled_' if self.pooled else ''}s{'+'.join(map(str, self.stages))}_{self.field}"

    def takes(self, key: str, level: str) -> bool:
        """Point `key` has `level` (in at least one stage, when pooled)."""
        return self.dose[key].get(level, 0) > 0 if self.dose is not None else self.of[key] == level


@dataclass(frozen=True)
class LevelEffect:
    """One level against the factor's best: level − best with its interval (None: the data
    cannot estimate it), and how many points have the level."""

    level: str
    effect: Interval | None
    points: int


@dataclass(frozen=True)
class FactorEffect:
    """A factor's levels against its best level, and the levels not separable from it."""

    factor: Factor
    method: str
    best: str
    levels: tuple[LevelEffect, ...]  # best first, then by estimate
    tier: tuple[str, ...]  # the best and every level whose interval reaches zero

    @property
    def resolved(self) -> bool:
        """Every other level is estimable and separated below the best."""
        return all(e.effect is not None and e.effect.high < 0 for e in self.levels[1:])


@dataclass(frozen=True)
class Fit:
    """The additive OLS on point means: y = mu + sum over factors of a level's column."""

    factors: tuple[Factor, ...]
    keys: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray  # point means
    n: np.ndarray  # seeds per point
    beta: np.ndarray
    pinv: np.ndarray
    columns: dict[tuple[int, str], int]  # (factor index, level) -> column; reference: absent


def find_factors(points: Mapping[str, PointData], fields: Sequence[str] = FIELDS
                 ) -> tuple[Factor, ...]:
    """Every field's stage columns that vary, the aliased ones (same partition of the points)
    merged into one factor."""
    found = []
    for name in fields:
        varying = _varying(points, name)
        groups: list[list[str]] = []
        for column in varying:
            home = next((g for g in groups if _aliased(points, g[0], column)), None)
            if home is None:
                groups.append([column])
            else:
                home.append(column)
        for group in groups:
            stages = tuple(map(_stage, group))
            of = {k: _merged(name, [p.levels[c] for c in group]) for k, p in points.items()
                  if all(c in p.levels for c in group)}
            found.append(Factor(name, stages, tuple(sorted(set(of.values()), key=_order)), of))
    return tuple(found)


# a group count means something else at each width: pooled over stages, only its place on
# the spectrum (one segment, between, one per channel) is one level
REGULAR, BETWEEN, DEPTHWISE = "1 (regular)", "2…C/2 (grouped)", "C (depthwise)"


def pooled_factors(points: Mapping[str, PointData], fields: Sequence[str] = FIELDS
                   ) -> tuple[Factor, ...]:
    """One factor per field over every stage where it varies; a point's dose of a level is how
    many of those stages take it."""
    found = []
    for name in fields:
        columns = _varying(points, name)
        stages = tuple(map(_stage, columns))
        dose, of = {}, {}
        for key, p in points.items():
            # a stage without the field (a conv block has no op order) adds no dose
            mine = [(c, s) for c, s in zip(columns, stages, strict=True) if c in p.levels]
            values = [_spectrum_level(p.levels[c], p.widths.get(s)) if name == "groups"
                      else p.levels[c] for c, s in mine]
            dose[key] = dict(Counter(values))
            of[key] = "/".join(p.levels.get(c, "–") for c in columns)
        levels = tuple(sorted({lv for d in dose.values() for lv in d}, key=_order))
        if columns and len(levels) > 1:
            found.append(Factor(name, stages, levels, of, dose))
    return tuple(found)


def _spectrum_level(value: str, width: int | None) -> str:
    groups = int(float(value))
    return REGULAR if groups == 1 else DEPTHWISE if width and groups == width else BETWEEN


def _varying(points: Mapping[str, PointData], name: str) -> list[str]:
    """A field's stage columns whose level varies over the points, by stage."""
    columns = sorted({c for p in points.values() for c in p.levels
                      if c.split("_", 1)[1] == name}, key=_stage)
    return [c for c in columns
            if len({p.levels[c] for p in points.values() if c in p.levels}) > 1]


def _stage(column: str) -> int:
    """The stage of a column 's2_groups': 2."""
    return int(column[1:].split("_")[0])


def _aliased(points: Mapping[str, PointData], a: str, b: str) -> bool:
    """Columns a and b split the points the same way (a one-to-one map between levels)."""
    pairs = {(p.levels.get(a), p.levels.get(b)) for p in points.values()}
    return len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs})


def _merged(field: str, values: Sequence[str]) -> str:
    """The level of stages that move together: 'pw_dw' when all say so, else '4/8/8' (group
    counts always per stage: 1/1/1 is not the same network as 1 group in one stage)."""
    return values[0] if len(set(values)) == 1 and field != "groups" else "/".join(values)


def _order(level: str) -> tuple:
    """Numeric levels (group counts) by value, then the spectrum's pooled levels from regular
    to depthwise, other text levels alphabetically."""
    if level in (REGULAR, BETWEEN, DEPTHWISE):
        return (0, (REGULAR, BETWEEN, DEPTHWISE).index(level))
    parts = level.split("/")
    try:
        return (0, *(float(p) for p in parts))
    except ValueError:
        return (1, level)


def fit(points: Mapping[str, PointData], factors: Sequence[Factor]) -> Fit:
    """The OLS over the points that have a level of every factor (one row per point, so a
    point with more seeds does not weigh more: the estimand is the design's main effect)."""
    keys = tuple(k for k in points if all(k in f.of for f in factors))
    columns: dict[tuple[int, str], int] = {}
    for i, f in enumerate(factors):
        # the first level is the reference; but when points have the field in different
        # numbers of stages (a conv stage has no op order), the reference's dose is a column
        # too, or a stage without the field would count as one at the reference level
        uneven = f.pooled and len({sum(d.values()) for d in f.dose.values()}) > 1
        for level in f.levels if uneven else f.levels[1:]:
            columns[(i, level)] = 1 + len(columns)
    x = np.zeros((len(keys), 1 + len(columns)))
    x[:, 0] = 1.0
    for row, key in enumerate(keys):
        for i, f in enumerate(factors):
            for level, count in (f.dose[key] if f.pooled else {f.of[key]: 1}).items():
                if (i, level) in columns:
                    x[row, columns[(i, level)]] = float(count)
    y = np.array([statistics.fmean(points[k].accs) for k in keys])
    n = np.array([len(points[k].accs) for k in keys], dtype=float)
    pinv = np.linalg.pinv(x)
    return Fit(tuple(factors), keys, x, y, n, pinv @ y, pinv, columns)


def contrast(f: Fit, factor: int, level: str, reference: str, method: str, noise: Noise,
             confidence: float = 0.9) -> Interval | None:
    """level − reference of factor `factor` with its interval by `method`; None when the
    design cannot estimate it (or, for pairs, fewer than two matched pairs)."""
    if method == "pairs":
        return _pairs(f, factor, level, reference, confidence)
    c = np.zeros(f.x.shape[1])
    for lv, sign in ((level, 1.0), (reference, -1.0)):
        if (factor, lv) in f.columns:
            c[f.columns[(factor, lv)]] += sign
    if np.abs(c - c @ f.pinv @ f.x).max() > 1e-8:
        return None  # not in the row space: aliased with another factor's levels
    weights = c @ f.pinv  # the estimate is weights @ y
    estimate = float(weights @ f.y)
    if method == "pooled":
        se = noise.sd * math.sqrt(float(weights ** 2 @ (1 / f.n))) if noise.known else math.inf
        return interval(estimate, se, noise.df, confidence)
    if method == "robust":
        # HC2: each point's squared residual over (1 - leverage), so seed noise and whatever
        # the additive model misses (interactions) both count; t with n - rank df
        rank = np.linalg.matrix_rank(f.x)
        leverage = np.einsum("ij,ji->i", f.x, f.pinv)
        residual = f.y - f.x @ f.beta
        keep = leverage < 1 - 1e-9  # a point fitted exactly carries no residual information
        var = float((weights[keep] ** 2 * residual[keep] ** 2 / (1 - leverage[keep])).sum())
        return interval(estimate, math.sqrt(var), len(f.keys) - rank, confidence)
    raise ValueError(f"contrast: method {method!r} must be one of {', '.join(METHODS)}")


def _pairs(f: Fit, factor: int, level: str, reference: str,
           confidence: float) -> Interval | None:
    """Matched pairs: points equal in every other factor, one at `level`, one at `reference`;
    the mean of their differences, t over the pairs (n - 1 df). None for a pooled factor,
    whose points differ in how many stages take a level, not in one level."""
    if f.factors[factor].pooled:
        return None
    index = {k: i for i, k in enumerate(f.keys)}
    others = [g for j, g in enumerate(f.factors) if j != factor]
    mine = f.factors[factor]
    by_rest: dict[tuple, dict[str, float]] = {}
    for key in f.keys:
        rest = tuple(g.of[key] for g in others)
        by_rest.setdefault(rest, {})[mine.of[key]] = float(f.y[index[key]])
    diffs = [d[level] - d[reference] for d in by_rest.values() if level in d and reference in d]
    if len(diffs) < 2:
        return None
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    return interval(statistics.fmean(diffs), se, len(diffs) - 1, confidence)


def effects_of(points: Mapping[str, PointData], method: str = "pooled",
               noise: Noise | None = None, confidence: float = 0.9,
               fields: Sequence[str] = FIELDS) -> tuple[FactorEffect, ...]:
    """Every factor's levels against its best level (the best by the OLS estimate, for every
    method); `noise`: the seed noise for 'pooled' (default: pooled over these points)."""
    if method not in METHODS:
        raise ValueError(f"factor effects: method {method!r} must be one of {', '.join(METHODS)}")
    noise = noise or pooled_noise({k: p.accs for k, p in points.items()})
    factors = find_factors(points, fields)
    if not factors:
        return ()
    f = fit(points, factors)
    if not _full_rank(f):
        # too few points for a level per stage (a short search): one effect per field, pooled
        # over the stages (a fraction of the columns: what it cannot estimate, it says)
        pooled = pooled_factors(points, fields)
        if pooled:
            factors, f = pooled, fit(points, pooled)
    found = []
    for i, factor in enumerate(factors):
        ols = {lv: contrast(f, i, lv, factor.levels[0], "robust", noise, confidence)
               for lv in factor.levels}
        scores = {lv: (e.estimate if e is not None else -math.inf) for lv, e in ols.items()}
        best = max(factor.levels, key=lambda lv: (scores[lv], -factor.levels.index(lv)))
        counts = {lv: sum(factor.takes(k, lv) for k in factor.of) for lv in factor.levels}
        levels = [LevelEffect(best, interval(0.0, 0.0, math.inf, confidence), counts[best])]
        for lv in factor.levels:
            if lv != best:
                levels.append(LevelEffect(lv, contrast(f, i, lv, best, method, noise,
                                                       confidence), counts[lv]))
        levels[1:] = sorted(levels[1:], key=lambda e: -(e.effect.estimate if e.effect
                                                        else -math.inf))
        tier = tuple(e.level for e in levels if e.effect is not None and not e.effect.high < 0)
        found.append(FactorEffect(factor, method, best, tuple(levels), tier))
    return tuple(found)


def _full_rank(f: Fit) -> bool:
    """Every level of every factor is estimable against its factor's reference."""
    return bool(len(f.keys)) and np.linalg.matrix_rank(f.x) == f.x.shape[1]


def factor_effects(table, fidelity: int, method: str = "pooled", noise: Noise | None = None,
                   confidence: float = 0.9, fields: Sequence[str] = FIELDS,
                   base_seed: int = 0) -> tuple[FactorEffect, ...]:
    """effects_of every trial of a trials table measured after `fidelity` epochs."""
    return effects_of(points_at(table, fidelity, fields, base_seed), method, noise,
                      confidence, fields)
