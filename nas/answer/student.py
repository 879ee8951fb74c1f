"""Student's t and Fisher's F distributions without scipy: CDFs and the t quantile."""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom (inf: the normal)."""
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(df):
        return _NORMAL.cdf(t)
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * beta_inc(df / 2, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p; inf for df <= 0 (no degrees of freedom: nothing is known)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p = {p} must lie in (0, 1)")
    if df <= 0 or math.isnan(df):
        return math.inf if p > 0.5 else -math.inf if p < 0.5 else 0.0
    if math.isinf(df):
        return _NORMAL.inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    # Newton's steps from the normal quantile, kept inside a bracket that grows until it holds
    # p (a step leaving it bisects instead): fast, and safe for df < 1 and tiny tails
    low, high = 0.0, max(1.0, 2 * _NORMAL.inv_cdf(p))
    while t_cdf(high, df) < p:
        low, high = high, 2 * high
    x = min(max(_NORMAL.inv_cdf(p), low), high)
    for _ in range(200):
        excess = t_cdf(x, df) - p
        if excess < 0:
            low = x
        else:
            high = x
        density = t_pdf(x, df)
        step = x - excess / density if density > 0 else math.nan
        new = step if low < step < high else (low + high) / 2
        if abs(new - x) <= 1e-13 * max(1.0, abs(x)):
            return new
        x = new
    return x


def t_pdf(t: float, df: float) -> float:
    """The density of Student's t with `df` (finite) degrees of freedom."""
    log = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
           - (df + 1) / 2 * math.log1p(t * t / df))
    return math.exp(log)


def f_sf(f: float, d1: float, d2: float) -> float:
    """P(F > f) for Fisher's F with (d1, d2) degrees of freedom."""
    if f <= 0:
        return 1.0
    return beta_inc(d2 / 2, d1 / 2, d2 / (d2 + d1 * f))


def beta_inc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (Lentz's continued fraction)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"beta_inc: x = {x} must lie in [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    # the fraction converges fast only below the mean; above it use I_x(a, b) = 1 - I_{1-x}(b, a)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _fraction(b, a, 1.0 - x) / b


def _fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            step = c * d
            result *= step
        if abs(step - 1.0) < 1e-15:
            break
    return result
