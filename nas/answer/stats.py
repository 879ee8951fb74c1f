"""Seed noise pooled over points, intervals of means and of differences, and the tests that
say whether one point is separated from another."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nas.answer.student import f_sf, t_cdf, t_quantile


@dataclass(frozen=True)
class Noise:
    """The seed-to-seed standard deviation of one training run's accuracy, and its degrees of
    freedom (inf: known exactly; 0: nothing known yet)."""

    sd: float
    df: float
    source: str = "pooled"

    @property
    def known(self) -> bool:
        """Whether an interval can be computed at all."""
        return self.df > 0 and math.isfinite(self.sd)

    def to_dict(self) -> dict:
        """JSON-ready (inf degrees of freedom as the string 'inf')."""
        return {"sd": _finite(self.sd), "df": "inf" if math.isinf(self.df) else self.df,
                "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping) -> Noise:
        """The inverse of to_dict."""
        sd = math.nan if data["sd"] is None else float(data["sd"])
        return cls(sd, float(data["df"]), str(data.get("source", "pooled")))


UNKNOWN = Noise(math.nan, 0.0, "none")


@dataclass(frozen=True)
class Interval:
    """An estimate with its two-sided interval at `confidence`, and P(true value > 0)."""

    estimate: float
    low: float
    high: float
    confidence: float
    p_positive: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def excludes_zero(self) -> bool:
        """Resolved: the interval lies wholly on one side of zero."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        return {k: _finite(getattr(self, k))
                for k in ("estimate", "low", "high", "confidence", "p_positive")}


def pooled_noise(samples: Mapping[str, Sequence[float]], prior: Noise | None = None) -> Noise:
    """The within-point variance pooled over every point with two or more seeds (one df per
    extra seed), combined with a prior as `prior.df` pseudo-observations; a prior with inf df
    is taken as known and returned."""
    if prior is not None and math.isinf(prior.df):
        return prior
    squares = df = 0.0
    for values in samples.values():
        if len(values) > 1:
            mean = statistics.fmean(values)
            squares += sum((v - mean) ** 2 for v in values)
            df += len(values) - 1
    source = "pooled"
    if prior is not None and prior.known:
        squares += prior.df * prior.sd ** 2
        df += prior.df
        source = "pooled + prior"
    return Noise(math.sqrt(squares / df), df, source) if df > 0 else UNKNOWN


def two_sided(confidence: float, df: float) -> float:
    """t_{(1+confidence)/2, df}: the half-width of a two-sided interval in standard errors."""
    return t_quantile((1 + confidence) / 2, df)


def interval(estimate: float, se: float, df: float, confidence: float,
             q: float | None = None) -> Interval:
    """estimate ± t_{(1+confidence)/2, df} · se, and P(true > 0) under a flat prior (q: that
    quantile, when the caller computed it once for many intervals)."""
    if not math.isfinite(se) or df <= 0:
        return Interval(estimate, -math.inf, math.inf, confidence, 0.5)
    q = two_sided(confidence, df) if q is None else q
    p = t_cdf(estimate / se, df) if se > 0 else (1.0 if estimate > 0 else 0.0 if estimate < 0
                                                 else 0.5)
    return Interval(estimate, estimate - q * se, estimate + q * se, confidence, p)


def mean_interval(values: Sequence[float], noise: Noise, confidence: float = 0.9,
                  q: float | None = None) -> Interval:
    """A point's mean over its seeds: mean ± t · sd / sqrt(n), sd and df from `noise`."""
    se = noise.sd / math.sqrt(len(values)) if noise.known else math.inf
    return interval(statistics.fmean(values), se, noise.df, confidence, q)


def difference(a: Sequence[float], b: Sequence[float], noise: Noise,
               confidence: float = 0.9, q: float | None = None) -> Interval:
    """mean(a) - mean(b) with the pooled noise: se = sd · sqrt(1/n_a + 1/n_b)."""
    se = noise.sd * math.sqrt(1 / len(a) + 1 / len(b)) if noise.known else math.inf
    return interval(statistics.fmean(a) - statistics.fmean(b), se, noise.df, confidence, q)


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.9) -> Interval:
    """mean(a) - mean(b) from the two points' own variances (Welch-Satterthwaite df): what a
    pairwise test without pooling gives, kept to compare against (needs two seeds a side)."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return interval(statistics.fmean(a) - statistics.fmean(b), 0.0, math.inf, confidence)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return interval(statistics.fmean(a) - statistics.fmean(b), math.sqrt(va + vb), df,
                    confidence)


def epoch_noise(curves: Mapping[str, Sequence[Sequence[float]]], epoch: int) -> Noise:
    """The seed noise after `epoch` (1-based) epochs, pooled over the points whose seed curves
    reach it: the noise an early-stopped point's rank is judged within."""
    at = {key: [c[epoch - 1] for c in seeds if len(c) >= epoch]
          for key, seeds in curves.items()}
    noise = pooled_noise(at)
    return Noise(noise.sd, noise.df, f"epoch {epoch}")


@dataclass(frozen=True)
class Spread:
    """Levene's test (the point's seed sd as its spread) of equal seed noise across groups."""

    sds: dict[str, float]  # group -> pooled seed sd
    f: float
    p: float
    points: int


def homoscedasticity(samples: Mapping[str, Sequence[float]],
                     groups: Mapping[str, str]) -> Spread:
    """Whether seed noise differs between groups of points (a factor's levels): a one-way
    ANOVA of each point's sample sd (Levene's test with one spread value per point, since the
    seeds of one point share its mean); p small: pooling across the groups is suspect."""
    by: dict[str, list[float]] = {}
    pooled: dict[str, dict[str, Sequence[float]]] = {}
    for key, values in samples.items():
        if len(values) > 1 and key in groups:
            by.setdefault(groups[key], []).append(statistics.stdev(values))
            pooled.setdefault(groups[key], {})[key] = values
    sds = {g: pooled_noise(p).sd for g, p in sorted(pooled.items())}
    n, k = sum(map(len, by.values())), len(by)
    if k < 2 or n <= k:
        return Spread(sds, math.nan, math.nan, n)
    grand = statistics.fmean(v for values in by.values() for v in values)
    between = sum(len(v) * (statistics.fmean(v) - grand) ** 2 for v in by.values()) / (k - 1)
    within = sum((x - statistics.fmean(v)) ** 2 for v in by.values() for x in v) / (n - k)
    f = between / within if within > 0 else math.inf
    return Spread(sds, f, f_sf(f, k - 1, n - k) if math.isfinite(f) else 0.0, n)


def _finite(value: float) -> float | None:
    """JSON has no inf or NaN: None stands for either."""
    return value if math.isfinite(value) else None
