"""Pooled seed noise, intervals and the homoscedasticity test; why the noise is pooled."""

import math
import random
import statistics

import pytest

from nas.answer.stats import Noise, difference, epoch_noise, homoscedasticity, pooled_noise, welch

REPEATS, LEVEL = 400, 0.9
# 400 draws of a 90 % event: sd sqrt(400 · .9 · .1) = 6, so 3 sd either side is 342 .. 378
LOW, HIGH = 342, 378


def test_pooled_noise_by_hand_and_with_a_prior():
    samples = {"a": [1.0, 3.0], "b": [2.0, 2.0, 5.0], "c": [4.0]}  # c has no df
    # SS: a 2 (mean 2), b 6 (mean 3); df 1 + 2 = 3; s^2 = 8 / 3
    noise = pooled_noise(samples)
    assert noise.df == 3 and noise.sd == pytest.approx(math.sqrt(8 / 3))
    # a prior of sd 1 on 5 df is 5 pseudo-df: s^2 = (8 + 5 · 1) / (3 + 5)
    mixed = pooled_noise(samples, Noise(1.0, 5.0, "bench"))
    assert mixed.df == 8 and mixed.sd == pytest.approx(math.sqrt(13 / 8))
    known = Noise(0.5, math.inf, "bench")
    assert pooled_noise(samples, known) is known
    assert not pooled_noise({"a": [1.0], "b": [2.0]}).known


def test_noise_round_trips_through_json_values():
    for noise in (Noise(0.01, 12.0), Noise(0.02, math.inf, "prior"), pooled_noise({})):
        back = Noise.from_dict(noise.to_dict())
        assert back.df == noise.df and back.source == noise.source
        assert back.sd == noise.sd or (math.isnan(back.sd) and math.isnan(noise.sd))


def test_difference_interval_by_hand():
    noise = Noise(0.02, 10.0)
    gap = difference([0.6, 0.62], [0.55, 0.57, 0.56], noise, 0.95)
    se = 0.02 * math.sqrt(1 / 2 + 1 / 3)
    assert gap.estimate == pytest.approx(0.05)
    assert gap.high - gap.estimate == pytest.approx(2.228139 * se, abs=1e-6)  # t_{.975, 10}
    assert gap.excludes_zero


def test_epoch_noise_pools_the_seed_curves_at_that_epoch():
    curves = {"a": [[0.1, 0.5], [0.3, 0.5]], "b": [[0.2, 0.4], [0.2, 0.6]], "c": [[0.9]]}
    at1, at2 = epoch_noise(curves, 1), epoch_noise(curves, 2)
    assert at1.sd == pytest.approx(math.sqrt(0.02 / 2)) and at1.df == 2  # a: .1, .3; b: 0
    assert at2.sd == pytest.approx(math.sqrt(0.02 / 2)) and at2.source == "epoch 2"


def test_homoscedasticity_tells_a_threefold_noise_from_an_equal_one():
    rng = random.Random(0)
    for ratio, significant in ((1.0, False), (3.0, True)):
        samples, groups = {}, {}
        for i in range(60):
            sd = 0.01 * (ratio if i % 2 else 1.0)
            samples[f"p{i}"] = [rng.gauss(0.6, sd) for _ in range(3)]
            groups[f"p{i}"] = "odd" if i % 2 else "even"
        spread = homoscedasticity(samples, groups)
        assert spread.points == 60 and set(spread.sds) == {"odd", "even"}
        assert (spread.p < 0.01) == significant, spread


def test_pooling_is_calibrated_with_two_seeds_where_welch_is_too_wide_to_use():
    """Why the race pools: 20 points x 2 seeds with equal noise. The pooled interval of a gap
    (20 df) covers the truth 90 % of the time; Welch's (about 1-2 df from two seeds a side)
    covers too, but is about twice as wide (median ratio 2.06 on this seed), so it would need
    far more seeds to separate a pair."""
    rng = random.Random(1)
    truth = [0.60 + 0.002 * i for i in range(20)]
    pooled_hits = welch_hits = 0
    widths = []
    for _ in range(REPEATS):
        samples = {i: [rng.gauss(m, 0.017) for _ in range(2)] for i, m in enumerate(truth)}
        noise = pooled_noise(samples)
        pooled, own = difference(samples[5], samples[0], noise, LEVEL), welch(
            samples[5], samples[0], LEVEL)
        gap = truth[5] - truth[0]
        pooled_hits += pooled.low <= gap <= pooled.high
        welch_hits += own.low <= gap <= own.high
        widths.append(own.half_width / pooled.half_width)
    assert LOW <= pooled_hits <= HIGH
    assert welch_hits >= LOW
    assert statistics.median(widths) > 1.8
