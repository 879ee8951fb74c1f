"""Student's t and F against printed table values and closed forms."""

import math

import pytest

from nas.answer.student import beta_inc, f_sf, t_cdf, t_quantile


@pytest.mark.parametrize(("p", "df", "table"), [
    (0.95, 1, 6.3138), (0.95, 2, 2.9200), (0.95, 6, 1.9432), (0.975, 10, 2.2281),
    (0.95, 30, 1.6973), (0.995, 4, 4.6041), (0.95, math.inf, 1.6449)])
def test_t_quantiles_match_the_printed_table(p, df, table):
    assert t_quantile(p, df) == pytest.approx(table, abs=1e-4)
    assert t_quantile(1 - p, df) == pytest.approx(-table, abs=1e-4)
    assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-10)


def test_t_cdf_closed_forms():
    # df = 1 is Cauchy: P(T <= t) = 1/2 + atan(t)/pi; df = 2: 1/2 + t / (2 sqrt(2 + t^2))
    for t in (-3.0, -0.5, 0.0, 0.7, 4.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


def test_no_degrees_of_freedom_means_an_infinite_quantile():
    assert t_quantile(0.95, 0) == math.inf and t_quantile(0.05, 0) == -math.inf
    assert math.isnan(t_cdf(1.0, 0))


def test_f_survival_and_incomplete_beta_closed_forms():
    # F(2, d2): P(F > f) = (1 + 2 f / d2)^(-d2 / 2); I_x(a, 1) = x^a
    for f, d2 in ((3.0, 10), (0.5, 4), (7.0, 30)):
        assert f_sf(f, 2, d2) == pytest.approx((1 + 2 * f / d2) ** (-d2 / 2), rel=1e-10)
    assert beta_inc(2.5, 1.0, 0.3) == pytest.approx(0.3 ** 2.5, rel=1e-12)
    assert f_sf(0.0, 3, 5) == 1.0
