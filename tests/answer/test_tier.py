"""The tier and its intervals, computed by hand for 3 points x 3 seeds."""

import math

import pytest

from nas.answer.stats import pooled_noise
from nas.answer.tier import cheapest, leader_of, tier

SAMPLES = {"A": [0.60, 0.62, 0.64], "B": [0.59, 0.60, 0.61], "C": [0.50, 0.52, 0.54]}
T_95_6 = 1.943180  # t_{0.95, 6} from the table: a 90 % two-sided interval on 6 df


def test_tier_and_intervals_by_hand():
    # pooled variance: sum of squares within points over sum(n - 1) df
    #   A: mean .62, SS = .02^2 + 0 + .02^2 = .0008;  B: mean .60, SS = .0002;  C: .0008
    #   s^2 = (.0008 + .0002 + .0008) / (2 + 2 + 2) = .0003,  s = .0173205, df = 6
    noise = pooled_noise(SAMPLES)
    assert noise.df == 6 and noise.sd == pytest.approx(math.sqrt(0.0003))
    t = tier(SAMPLES, noise, 0.9)
    assert t.leader == "A"
    # A's mean: .62 ± T · s / sqrt(3) = .62 ± 1.943180 · .01
    assert t.means["A"].low == pytest.approx(0.62 - T_95_6 * 0.01, abs=1e-6)
    assert t.means["A"].high == pytest.approx(0.62 + T_95_6 * 0.01, abs=1e-6)
    # A − B = .02 ± T · s · sqrt(1/3 + 1/3) = .02 ± 1.943180 · .0141421 = .02 ± .027481:
    # the interval reaches zero, so B stays in the tier
    se = math.sqrt(0.0003) * math.sqrt(2 / 3)
    assert t.gaps["B"].low == pytest.approx(0.02 - T_95_6 * se, abs=1e-6)
    assert t.gaps["B"].low < 0
    # A − C = .10 ± .027481 > 0: separated
    assert t.gaps["C"].low == pytest.approx(0.10 - T_95_6 * se, abs=1e-6)
    assert t.gaps["C"].low > 0
    assert t.members == ("A", "B") and t.unresolved == ("B",)
    # P(A > B) = T_6(.02 / .0141421) = T_6(1.41421), just under T_6(t_{0.90, 6} = 1.4398) = .9
    assert 0.85 < t.gaps["B"].p_positive < 0.9


def test_a_higher_confidence_keeps_more_and_no_noise_keeps_everything():
    noise = pooled_noise(SAMPLES)
    assert tier(SAMPLES, noise, 0.999999).members == ("A", "B", "C")
    single = {k: v[:1] for k, v in SAMPLES.items()}  # one seed each: no df
    assert tier(single, pooled_noise(single), 0.9).members == ("A", "B", "C")


def test_leader_ties_and_the_cheapest_member():
    assert leader_of({"x": [0.25, 0.75], "y": [0.5], "z": [0.5, 0.5, 0.5]}) == "z"  # more seeds
    assert leader_of({"x": [0.25, 0.75], "w": [0.5, 0.5]}) == "w"  # then the smaller key
    assert cheapest(("A", "B", "C"), {"A": 3.0, "B": 1.0, "C": 1.0}) == "B"  # tie: better
