"""The strategies benchmark: its spaces, what a search returns at a budget, regret by hand."""

import dataclasses

import pandas as pd
import pytest

from benchmarks import search_strategies as st
from nas.bench.table import load_bench
from nas.search.space.load import load_space
from tests.benchkit import write_bench
from tests.searchkit import BENCH, variant

# the bench fixture's space with the default search's mid_act and residual choices
WIDE = variant(BENCH, blocks={"mid_act": ["none"], "residual": ["identity"]})


@pytest.fixture
def bench(tmp_path):
    return load_bench(write_bench(tmp_path / "bench", epochs=2))


def test_each_strategy_is_the_bench_space_with_its_search_settings(bench, tmp_path):
    for name, settings in st.STRATEGIES.items():
        path = tmp_path / "s.toml"
        path.write_text(st.strategy_space(bench, settings, trials=30))
        space = load_space(path)
        assert space.search.trials == 30 and space.search.sampler == settings["sampler"]
        grace = settings["grace_period"]
        assert space.search.grace_period == (bench.epochs if grace == st.FULL else grace), name
        assert space.search.multivariate == settings.get("multivariate"), name
        assert space.search.stopped_as == settings.get("stopped_as", "pruned"), name
        assert not space.references  # the default's references use mid_act none: not here
    wide = write_bench(tmp_path / "wide", space=WIDE)
    path.write_text(st.strategy_space(load_bench(wide), st.STRATEGIES["TPE + ASHA (default)"], 9))
    names = [name for name, _ in load_space(path).references]
    assert names == ["regular", "separable"]  # the default's points that lie in this space


def test_the_returned_point_and_its_regret_at_each_budget_by_hand(bench):
    keys = sorted(bench.points, key=lambda k: bench.points[k].final)  # worst .. best
    finals = [bench.points[k].final for k in keys]  # 0.31, 0.36, 0.41, 0.46
    table = pd.DataFrame([
        # a stopped trial of the best point ends first, then two completed trials
        {"trial_id": "a", "arch_key": keys[3], "status": "stopped", "best_val_acc": 0.2,
         "macs": 1, "simulated_s": 1.0, "clock_s": 10.0},
        {"trial_id": "b", "arch_key": keys[0], "status": "completed", "best_val_acc": 0.3,
         "macs": 1, "simulated_s": 4.0, "clock_s": 11.0},
        {"trial_id": "c", "arch_key": keys[2], "status": "completed", "best_val_acc": 0.4,
         "macs": 1, "simulated_s": 6.0, "clock_s": 12.0},
    ])
    path = st.trajectory(table, bench, [0.5, 1.0, 5.0, 11.0])
    assert path[0] == (None, None)  # nothing finished within 0.5 s
    assert path[1] == (pytest.approx(0.0), 1)  # only the stopped trial: its point is the best
    assert path[2] == (pytest.approx(100 * (finals[3] - finals[0])), 4)  # completed ones win
    assert path[3] == (pytest.approx(100 * (finals[3] - finals[2])), 2)


def test_medians_and_quartiles():
    assert st._spread("r", [1.0, 2.0, 3.0, 4.0, 5.0]) == {"r_median": 3.0, "r_q1": 2.0,
                                                           "r_q3": 4.0}
    assert st._spread("r", [2.0]) == {"r_median": 2.0, "r_q1": 2.0, "r_q3": 2.0}


def test_the_targets_are_read_off_the_table():
    def row(name, budget, regret):
        return {"strategy": name, "budget": budget, "regret_pp_median": regret}

    frame = pd.DataFrame([row(st.DEFAULT, 0.1, 1.2), row(st.DEFAULT, 0.3, 0.4),
                          row(st.BASELINE, 0.1, 1.2), row(st.BASELINE, 0.3, 0.9),
                          row("other", 0.1, 0.5), row("other", 0.3, 0.0)])
    text = "\n".join(st.verdicts(frame))
    assert "with <= 30 % of the compute: **met** (first at 30 %)" in text
    assert "10 %: ties (1.20 vs 1.20); 30 %: beats (0.40 vs 0.90)" in text
    assert "<= 0.5 pt: other 10 %, TPE + ASHA (default) 30 %" in text
    late = frame.assign(regret_pp_median=[1.2, 0.6, 1.2, 0.9, 0.5, 0.0])
    assert "**missed** (not at any budget measured)" in "\n".join(st.verdicts(late))


def test_finished_replays_are_kept_and_reused_only_for_the_same_settings(tmp_path):
    log = tmp_path / "s.replays.jsonl"
    settings = st.STRATEGIES["random"]
    done = {"strategy": "random", "seed": 0, "settings": settings, "speed": 500.0,
            "budget_s": 100.0, "trials": 400, "table": [{"trial_id": "a"}]}
    st.append_replay(log, done)
    with log.open("a") as file:
        file.write('{"strategy": "random", "se')  # killed mid-write
    assert st.load_replays(log) == [done]
    assert st.reusable(done, settings, 100.0, 500.0, 400)
    assert st.reusable(done, settings, 50.0, 500.0, 400)  # ran further than needed
    assert not st.reusable(done, settings, 200.0, 500.0, 400)  # stopped too early
    assert not st.reusable(done, settings, 100.0, 200.0, 400)
    assert not st.reusable(done, st.STRATEGIES["TPE"], 100.0, 500.0, 400)


def test_the_single_seed_noise_floor_by_hand(bench):
    # the fixture's seeds agree on the order (final_of rises with the index): no regret
    assert "seed 0: 0.00 pt (rank 1); seed 1: 0.00 pt (rank 1)" in st.single_seed_floor(bench)[0]
    # the worst point (finals 0.30 / 0.32) gets a lucky seed 1 of 0.48, above the best's 0.47:
    # seed 1's winner is then that point, mean 0.39 against the best's 0.46, rank 3 of 4
    worst = min(bench.points.values(), key=lambda p: p.final)
    lucky = dataclasses.replace(worst, curves=(worst.curves[0], (*worst.curves[1][:-1], 0.48)))
    noisy = dataclasses.replace(bench, points={**bench.points, worst.key: lucky})
    assert "seed 0: 0.00 pt (rank 1); seed 1: 7.00 pt (rank 3)" in st.single_seed_floor(noisy)[0]
