"""Factor effects by hand on a 2 x 2 design, aliasing, and the 90 % intervals' coverage over
400 simulated data sets with known effects and equal seed noise."""

import math
import random

import pytest

from nas.answer.data import PointData
from nas.answer.effects import contrast, effects_of, find_factors, fit
from nas.answer.stats import pooled_noise

T_95_4, T_95_1 = 2.131847, 6.313752  # t_{0.95, 4} and t_{0.95, 1} from the table
REPEATS, LOW, HIGH = 400, 342, 378  # 90 % of 400 ± 3 binomial sd (6)


def point(key, accs, **levels):
    """A point whose stage columns are s1_<name> = value."""
    return PointData(key, tuple(accs), tuple(range(len(accs))), 1.0, 1.0, 1.0,
                     {f"s1_{k}": v for k, v in levels.items()}, {1: 32})


# order x mid activation, two seeds each: pw_dw is .05 better without, .06 with relu
TWO_BY_TWO = {p.key: p for p in (
    point("p1", [0.50, 0.52], order="dw_pw", mid_act="none"),  # mean .51
    point("p2", [0.55, 0.57], order="pw_dw", mid_act="none"),  # mean .56
    point("p3", [0.53, 0.53], order="dw_pw", mid_act="relu"),  # mean .53
    point("p4", [0.60, 0.58], order="pw_dw", mid_act="relu"))}  # mean .59


def test_order_effect_by_hand_with_every_method():
    # OLS on a balanced 2 x 2 = the mean of the matched differences: (.05 + .06) / 2 = .055
    # pooled: SS = .0002 + .0002 + 0 + .0002 on 4 df, s^2 = .00015; the estimate puts ±1/2 on
    #   each point mean (variance s^2 / 2 each): se^2 = 4 · (1/4) · .00015 / 2 = .000075
    # pairs: differences .05 and .06, sd .0070711, se .005 on 1 df
    # robust (HC2): residuals ±.01 / 4 (the interaction), leverage 3/4 each:
    #   se^2 = 4 · (1/4) · .0025^2 / (1 - 3/4) = .000025 (se .005), on 4 - 3 = 1 df
    expected = {"pooled": T_95_4 * math.sqrt(0.000075), "pairs": T_95_1 * 0.005,
                "robust": T_95_1 * 0.005}
    for method, half in expected.items():
        order, mid = effects_of(TWO_BY_TWO, method, confidence=0.9)
        assert order.factor.field == "order" and order.best == "pw_dw"
        (dw_pw,) = order.levels[1:]
        assert dw_pw.level == "dw_pw" and dw_pw.points == 2
        assert dw_pw.effect.estimate == pytest.approx(-0.055)
        assert dw_pw.effect.half_width == pytest.approx(half, rel=1e-5), method
        assert order.resolved == (dw_pw.effect.high < 0) and order.tier[0] == "pw_dw"
        assert mid.best == "relu" and mid.levels[1].effect.estimate == pytest.approx(-0.025)


def test_stages_that_move_together_are_one_factor():
    points = {k: PointData(k, p.accs, p.seeds, 1.0, 1.0, 1.0,
                           {**p.levels, "s2_order": p.levels["s1_order"], "s2_groups": "4"},
                           {1: 32, 2: 64})
              for k, p in TWO_BY_TWO.items()}
    factors = find_factors(points)
    # s2_groups never varies: no factor; s1_order and s2_order split the points alike: one
    assert [(f.field, f.stages) for f in factors] == [("order", (1, 2)), ("mid_act", (1,))]
    assert factors[0].levels == ("dw_pw", "pw_dw")


def test_a_confounded_level_is_not_estimable():
    # level c of X only ever appears with level r of Y: c − a cannot be told from r − p
    cells = [("a", "p"), ("b", "p"), ("a", "q"), ("b", "q"), ("c", "r")]
    points = {f"x{i}": point(f"x{i}", [0.5 + 0.01 * i, 0.51 + 0.01 * i], order=x, mid_act=y)
              for i, (x, y) in enumerate(cells)}
    factors = find_factors(points)
    f = fit(points, factors)
    noise = pooled_noise({k: p.accs for k, p in points.items()})
    assert contrast(f, 0, "c", "a", "pooled", noise) is None
    assert contrast(f, 0, "b", "a", "pooled", noise).estimate == pytest.approx(0.01)
    effect = next(e for e in effects_of(points) if e.factor.field == "order")
    assert any(e.effect is None for e in effect.levels) and not effect.resolved


def test_every_method_covers_known_effects_90_percent_of_the_time():
    """Groups (3 levels) x order x mid activation, 2 seeds a point, seed sd 1.7 pt, additive
    truth: the 90 % interval of groups 4 − 1 and of pw_dw − dw_pw covers the truth in 342..378
    of 400 simulated data sets with every method."""
    rng = random.Random(7)
    groups = {"1": 0.0, "4": 0.008, "32": -0.012}
    orders = {"dw_pw": 0.0, "pw_dw": 0.03}
    acts = {"none": 0.0, "relu": -0.01}
    cells = [(g, o, a) for g in groups for o in orders for a in acts]
    hits = {m: {"groups": 0, "order": 0} for m in ("pooled", "robust", "pairs")}
    for _ in range(REPEATS):
        points = {}
        for i, (g, o, a) in enumerate(cells):
            mean = 0.55 + groups[g] + orders[o] + acts[a]
            points[f"p{i}"] = point(f"p{i}", [rng.gauss(mean, 0.017) for _ in range(2)],
                                    groups=g, order=o, mid_act=a)
        factors = find_factors(points)
        f = fit(points, factors)
        noise = pooled_noise({k: p.accs for k, p in points.items()})
        for method in hits:
            g4 = contrast(f, 0, "4", "1", method, noise, 0.9)
            pw = contrast(f, 1, "pw_dw", "dw_pw", method, noise, 0.9)
            hits[method]["groups"] += g4.low <= 0.008 <= g4.high
            hits[method]["order"] += pw.low <= 0.03 <= pw.high
    for method, counts in hits.items():
        for name, count in counts.items():
            assert LOW <= count <= HIGH, (method, name, count)


T_95_3 = 2.353363  # t_{0.95, 3} from the table

# three points, two stages: one op order per stage and a stage-1 mid activation are four
# columns for three points; pooled over the stages, pw_dw's dose (0, 1, 2 stages) and relu's
# (0, 1, 0) are three: y = .50 + .02 · pw_dw stages + 0 · relu stages, exactly
TOO_FEW = {k: PointData(k, accs, (0, 1), 1.0, 1.0, 1.0,
                        {"s1_order": o1, "s2_order": o2, "s1_mid_act": mid, "s2_mid_act": "none"},
                        {1: 32, 2: 64})
           for k, accs, o1, o2, mid in (("p1", (0.49, 0.51), "dw_pw", "dw_pw", "none"),
                                        ("p2", (0.51, 0.53), "pw_dw", "dw_pw", "relu"),
                                        ("p3", (0.53, 0.55), "pw_dw", "pw_dw", "none"))}


def test_too_few_points_for_a_level_per_stage_pool_each_field_over_its_stages():
    order, mid = effects_of(TOO_FEW, "pooled", confidence=0.9)
    assert order.factor.pooled and order.factor.stages == (1, 2) and mid.factor.stages == (1,)
    assert order.best == "pw_dw" and order.factor.of["p2"] == "pw_dw/dw_pw"
    (dw_pw,) = order.levels[1:]
    # dw_pw − pw_dw per stage = −(y3 − y1) / 2: weights (1/2, 0, −1/2) on the point means;
    # seed sd: each pair ±.01, s^2 = .0002 on 3 df; se^2 = s^2 · (1/4 + 1/4) / 2 seeds
    assert dw_pw.effect.estimate == pytest.approx(-0.02)
    assert dw_pw.effect.half_width == pytest.approx(T_95_3 * math.sqrt(0.0002 / 4), rel=1e-5)
    assert order.resolved and dw_pw.points == 2  # p1 and p2 switch at least one stage to dw_pw
    assert mid.levels[1].effect.estimate == pytest.approx(0.0, abs=1e-12)
    # pairs match points on a single level; a pooled factor's points differ in doses
    assert all(e.effect is None for f in effects_of(TOO_FEW, "pairs") for e in f.levels[1:])


def test_enough_points_keep_a_level_per_stage():
    assert not any(f.factor.pooled for f in effects_of(TWO_BY_TWO))


def test_pooled_group_counts_are_places_on_the_spectrum():
    from nas.answer.effects import BETWEEN, DEPTHWISE, REGULAR, pooled_factors

    points = {k: PointData(k, (0.5,), (0,), 1.0, 1.0, 1.0,
                           {"s1_groups": g1, "s2_groups": g2}, {1: 32, 2: 64})
              for k, g1, g2 in (("a", "1", "64"), ("b", "4", "1"), ("c", "32", "64"))}
    (groups,) = pooled_factors(points)
    assert groups.levels == (REGULAR, BETWEEN, DEPTHWISE)  # 32 of 32 and 64 of 64: depthwise
    assert groups.dose == {"a": {REGULAR: 1, DEPTHWISE: 1}, "b": {BETWEEN: 1, REGULAR: 1},
                           "c": {DEPTHWISE: 2}}


def test_a_stage_without_the_field_is_no_dose_of_any_level():
    # s2 is a conv block in p1 and p2 (no op order); pooled per stage switched:
    # y = .49 + .01 · dw_pw stages + .03 · pw_dw stages, exactly: pw_dw − dw_pw = +.02
    # (coding a missing stage as the reference level would not fit these four exactly)
    points = {k: PointData(k, (y - 0.005, y + 0.005), (0, 1), 1.0, 1.0, 1.0, levels, {1: 32})
              for k, y, levels in (
                  ("p1", 0.50, {"s1_order": "dw_pw"}), ("p2", 0.52, {"s1_order": "pw_dw"}),
                  ("p3", 0.51, {"s1_order": "dw_pw", "s2_order": "dw_pw"}),
                  ("p4", 0.55, {"s1_order": "pw_dw", "s2_order": "pw_dw"}))}
    (order,) = effects_of(points, "pooled")
    assert order.factor.pooled and order.factor.of["p1"] == "dw_pw/–"
    assert order.best == "pw_dw" and order.levels[1].effect.estimate == pytest.approx(-0.02)


def test_a_conv_stage_keeps_no_op_order_or_mid_activation():
    import pandas as pd

    from nas.answer.data import points_at

    row = {"status": "completed", "arch_key": "k", "seed_curves": "[[0.3, 0.5]]",
           "s1_kind": "conv", "s1_groups": 4, "s1_order": "dw_pw", "s1_mid_act": "none",
           "s1_residual": "identity", "s2_kind": "spectrum", "s2_groups": 8,
           "s2_order": "pw_dw", "s2_mid_act": "relu", "s2_residual": "none"}
    (point,) = points_at(pd.DataFrame([row]), 2).values()
    assert point.levels == {"s1_groups": "4", "s1_residual": "identity", "s2_groups": "8",
                            "s2_order": "pw_dw", "s2_mid_act": "relu", "s2_residual": "none"}
    assert point.kinds == {1: "conv", 2: "spectrum"}
