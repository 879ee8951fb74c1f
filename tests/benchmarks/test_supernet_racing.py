"""The supernet front end, alone and + racing, on a hand-made truth: what it returns, what it
costs, and the race after it."""

import json
import random

import pytest

from benchmarks import supernet_racing as snr
from nas.answer.settings import VerifySettings
from tests.benchmarks.test_search_strategies import hand_truth

# a leads by 10 pt over b and c (four seeds each, two values apiece: seed sd ~.0058 / .0082)
TRUTH = hand_truth({"a": [0.60, 0.61, 0.60, 0.61], "b": [0.50, 0.51, 0.50, 0.51],
                    "c": [0.49, 0.51, 0.50, 0.50], "d": [0.30, 0.30, 0.31, 0.31]})


def supernet_folder(path, scores, core_s):
    """A `run_search.py supernet --top-k 0` folder: supernet.json's cost, supernet.csv."""
    path.mkdir()
    (path / "supernet.json").write_text(json.dumps(
        {"settings": {"rank": "supernet"}, "train_s": core_s / 2, "train_threads": 1,
         "score_s": core_s / 4, "score_cores": 2}))
    (path / "supernet.csv").write_text("arch_key,score\n" + "".join(
        f"{k},{v}\n" for k, v in scores.items()))
    return path


def test_the_top_k_by_supernet_score_and_what_it_costs(tmp_path):
    run = supernet_folder(tmp_path / "sn", {"a": 0.2, "b": 0.4, "c": 0.3, "d": 0.1}, 8.0)
    order, core_s = snr.ranking(run, TRUTH)
    assert order == ["b", "c", "a", "d"] and core_s == 8.0  # 4 s training + 2 s x 2 cores
    settings = VerifySettings(confidence=0.9, max_seeds_per_point=4, budget_core_s=1000.0)
    # the top 2 miss a: alone returns b or c, 10 pt or more behind; no race can find a
    alone, raced = snr.one_repeat(order, 2, core_s, TRUTH, settings, random.Random(0))
    assert alone["regret_pp"] == pytest.approx(10.0, abs=0.6) and not alone["best_in_tier"]
    assert alone["compute"] == pytest.approx((8.0 + 2 * 10.0) / TRUTH.compute_s)
    # b and c are 0-1 pt apart: the race spends seeds until its cap, both stay in the tier
    assert raced["tier"] == 2 and raced["stop"] == "cap" and not raced["best_in_tier"]
    assert raced["compute"] == pytest.approx((8.0 + 8 * 10.0) / TRUTH.compute_s)
    # top 3 has a: the race separates it from b and c and returns it alone in its tier
    alone, raced = snr.one_repeat(order, 3, core_s, TRUTH, settings, random.Random(0))
    assert (raced["regret_pp"], raced["tier"], raced["stop"]) == (0.0, 1, "resolved")
    assert raced["best_in_tier"] and alone["regret_pp"] == pytest.approx(0.0)


def test_the_table_and_its_targets(tmp_path):
    run = supernet_folder(tmp_path / "sn", {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1}, 8.0)
    settings = VerifySettings(confidence=0.9, max_seeds_per_point=4, budget_core_s=1000.0)
    frame = snr.measure([run], [1, 3], 5, TRUTH, settings)
    assert list(zip(frame["k"], frame["mode"], strict=True)) == [
        (1, "alone"), (1, "+ racing"), (3, "alone"), (3, "+ racing")]
    one = frame.iloc[0]
    # the top 1 is the best point: no regret, 8 s + one 10 s seed of the 160 s bench
    assert (one["regret_pp_median"], one["p_best"], one["compute_median"]) == (
        0.0, 1.0, pytest.approx(18.0 / 160.0))
    lines = snr.markdown(frame, TRUTH, settings, 5)
    # 18 / 160 = 11 % of the bench's compute: under the 15 % target
    assert "- sn, alone: regret **met** (k = 1, compute 11.2 %); tier **met** (k = 1," \
        " compute 11.2 %)" in lines
