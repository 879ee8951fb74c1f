"""The strategies benchmark: its spaces, what a search returns at a budget, regret by hand."""

import dataclasses
import json
import random
import statistics
from typing import ClassVar

import pandas as pd
import pytest

from benchmarks import search_strategies as st
from benchmarks import strategy_racing as sr
from nas.answer.settings import VerifySettings
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


# --- alone and + racing (benchmarks/strategy_racing.py) ----------------------------------------


def trial(tid, key, seed, curve, simulated, clock):
    """One row of a replay's trials table as the benchmark keeps it (KEPT)."""
    status = "completed" if len(curve) == 2 else "stopped"
    return {"trial_id": tid, "arch_key": key, "status": status, "best_val_acc": max(curve),
            "macs": 1, "simulated_s": simulated, "clock_s": clock, "replay_seed": seed,
            "curve": json.dumps(curve)}


def hand_truth(finals: dict[str, list[float]], cost_s: float = 10.0) -> sr.Truth:
    """A 2-epoch bench by hand: each seed's curve rises linearly to its final accuracy."""
    seeds = {k: {s: sr.Seeded((f / 2, f), cost_s) for s, f in enumerate(v)}
             for k, v in finals.items()}
    means = {k: statistics.fmean(v) for k, v in finals.items()}
    return sr.Truth(seeds, means, max(means, key=means.get), {k: cost_s for k in finals}, 0, 2,
                    cost_s * sum(map(len, finals.values())), "")


def test_a_race_stops_when_the_leader_separates_and_when_its_budget_is_spent():
    truth = hand_truth({"a": [0.60, 0.61, 0.60, 0.61], "b": [0.50, 0.51, 0.50, 0.51],
                        "c": [0.20, 0.21, 0.20, 0.21]})
    front = pd.DataFrame([trial("1", "a", 0, [0.30, 0.60], 10.0, 1.0),
                          trial("2", "b", 0, [0.25, 0.50], 10.0, 2.0),
                          trial("3", "c", 1, [0.105], 5.0, 3.0)])  # ASHA stopped it at epoch 1
    found, _ = sr.front_candidates(front, truth)
    caps = {c.key: (c.stopped, c.max_seeds) for c in found}
    assert caps == {"a": (False, 4), "b": (False, 4), "c": (True, 3)}  # c's seed 1 is spent
    settings = VerifySettings(confidence=0.9, max_seeds_per_point=4)
    standing = sr.race_front(front, truth, settings, random.Random(0))
    # one round (a and b once more: the noise is unknown before) separates a from b, and c's
    # epoch-1 accuracy from a's within the epoch-1 noise
    assert (standing.stop, standing.leader, standing.tier.members) == ("resolved", "a", ("a",))
    assert (standing.runs, standing.spent_core_s) == (2, 20.0)
    close = hand_truth({"a": [0.60, 0.62, 0.61, 0.60], "b": [0.59, 0.61, 0.60, 0.59]})
    front = pd.DataFrame([trial("1", "a", 0, [0.30, 0.60], 10.0, 1.0),
                          trial("2", "b", 0, [0.29, 0.59], 10.0, 2.0)])
    tight = VerifySettings(confidence=0.9, max_seeds_per_point=4, budget_core_s=15.0)
    standing = sr.race_front(front, close, tight, random.Random(0))
    assert (standing.stop, standing.runs, standing.spent_core_s) == ("budget", 1, 10.0)
    assert set(standing.tier.members) == {"a", "b"}
    assert sr.race_front(front.iloc[:0], close, tight, random.Random(0)) is None


def test_a_seed_the_front_end_replayed_is_never_drawn_again():
    truth = hand_truth({"a": [0.60, 0.62, 0.61], "b": [0.50, 0.52, 0.51]})
    front = pd.DataFrame([trial("1", "a", 1, [0.31, 0.62], 10.0, 1.0),
                          trial("2", "a", 0, [0.30], 5.0, 2.0),  # stopped: seed 0 is spent
                          trial("3", "a", 1, [0.31, 0.62], 10.0, 3.0),  # the same seed again
                          trial("4", "b", 2, [0.255, 0.51], 10.0, 4.0)])
    found, curves = sr.front_candidates(front, truth)
    assert {c.key: (c.accs, c.seeds, c.max_seeds) for c in found} == {
        "a": ((0.62,), (1,), 2), "b": ((0.51,), (2,), 3)}
    assert curves == {"a": {1: [0.31, 0.62], 0: [0.30]}, "b": {2: [0.255, 0.51]}}


def test_the_racing_summary_by_hand(bench):
    truth = sr.pooled_truth(bench, [])
    keys = sorted(bench.points, key=lambda k: bench.points[k].final)  # finals .31 .. .46
    assert truth.best == keys[3] and truth.compute_s == 40.0  # seconds: 2 (i + 1) a seed
    assert [truth.cost_s[k] for k in keys] == [2.0, 4.0, 6.0, 8.0]
    results = [
        {"strategy": "s", "seed": 0, "table": [  # point 2 (seed 0), then point 3 (seed 1)
            trial("a", keys[2], 0, [0.2, 0.40], 6.0, 1.0),
            trial("b", keys[3], 1, [0.235, 0.47], 8.0, 2.0)]},
        {"strategy": "s", "seed": 1, "table": [  # point 0 stopped at epoch 1, then point 3
            trial("a", keys[0], 0, [0.15], 1.0, 1.0),
            trial("b", keys[3], 0, [0.225, 0.45], 8.0, 2.0)]}]
    settings = VerifySettings(confidence=0.9, max_seeds_per_point=4)
    frame = sr.summarize(results, truth, (0.2, 0.5), settings)

    def row(mode, budget):
        return frame[(frame["mode"] == mode) & (frame["budget"] == budget)].iloc[0]

    # 8 s: seed 0 has point 2 (regret 5 pt); seed 1 only the stopped point 0 (15 pt), and no
    # full-budget result to race: its + racing is its answer alone
    alone, raced = row("alone", 0.2), row("+ racing", 0.2)
    assert (alone["regret_pp_median"], alone["regret_pp_q1"], alone["regret_pp_q3"]) == (
        pytest.approx(10.0), pytest.approx(7.5), pytest.approx(12.5))
    assert (alone["p_best"], alone["tier_median"], alone["stops"]) == (0.0, 1, "")
    assert alone["compute_median"] == pytest.approx((6 + 1) / 2 / 40)
    assert raced["regret_pp_median"] == pytest.approx(10.0)
    assert raced["stops"] == "nothing to verify 1, resolved 1"
    # 20 s: both return point 3. Seed 0's race runs points 3 and 2 once more (14 s) and
    # separates them (gap 5 pt, sd 1.41 pt, 2 df); seed 1's runs point 3 once (8 s), which
    # measures the epoch-1 noise that separates the stopped point 0
    alone, raced = row("alone", 0.5), row("+ racing", 0.5)
    assert (alone["regret_pp_median"], alone["p_best"], alone["tier_median"]) == (0.0, 1.0, 1)
    assert alone["compute_median"] == pytest.approx((14 + 9) / 2 / 40)
    assert (raced["regret_pp_median"], raced["p_best"], raced["tier_median"]) == (0.0, 1.0, 1)
    assert raced["compute_median"] == pytest.approx((28 + 17) / 2 / 40)
    assert raced["stops"] == "resolved 2"
    text = "\n".join(sr.verdicts(frame, "CPU: test"))
    # alone meets the regret target with 23 / 80 of the compute; + racing spends 45 / 80
    assert "s, alone: median regret <= 0.5 pt at <= 30 % compute: **met** (first at the 50 %" \
        " budget, compute 28.7" in text
    assert "s, + racing: median regret <= 0.5 pt at <= 30 % compute: **missed**; P(tier ∋" \
        " best) >= 0.9 with median tier <= 5: **met** (first at the 50 % budget, compute 56.2" \
        in text
    assert "CPU: test" in text


def test_extra_seeds_are_pooled_by_arch_key(bench, tmp_path):
    extra = write_bench(tmp_path / "extra", epochs=2)
    meta = json.loads((extra / "meta.json").read_text())
    meta["budget"]["seed"] = 2
    (extra / "meta.json").write_text(json.dumps(meta))
    table = pd.read_csv(extra / "trials.csv")
    table.iloc[:2].to_csv(extra / "trials.csv", index=False)  # two of its points done so far
    truth = sr.pooled_truth(bench, [extra])
    assert sorted(len(v) for v in truth.seeds.values()) == [2, 2, 4, 4]
    assert "2 points with 2 seeds, 2 points with 4 seeds (extra: 2 of its 2 points matched)" \
        in truth.note and "Unequal seed counts" in truth.note
    assert all(set(truth.seeds[k]) == {0, 1, 2, 3} for k in table["arch_key"][:2])


class NoPool:
    """A ProcessPoolExecutor stand-in: answers every job with `answer`, counting the jobs."""

    jobs: ClassVar[list] = []
    answer: ClassVar[dict] = {}

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, jobs):
        jobs = list(jobs)
        NoPool.jobs += jobs
        return [{**NoPool.answer, "strategy": j[0], "seed": j[1]} for j in jobs]


def test_a_cached_replay_gets_racing_without_replaying(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(st, "ProcessPoolExecutor", NoPool)
    monkeypatch.setattr(st, "timed_default_replay", lambda *a: 0.0)
    monkeypatch.setattr(st, "write_png", lambda *a: False)
    keys = sorted(bench.points, key=lambda k: bench.points[k].final)
    cached = {"strategy": "random", "seed": 0, "settings": st.STRATEGIES["random"],
              "speed": 500.0, "budget_s": 20.0, "trials": 400, "wall_s": 1.0, "table": [
                  trial("a", keys[2], 0, [0.2, 0.40], 6.0, 1.0),
                  trial("b", keys[3], 1, [0.235, 0.47], 8.0, 2.0)]}
    out = tmp_path / "s"
    st.append_replay(out.with_suffix(st.REPLAYS), cached)
    argv = ["--bench", str(bench.run_dir), "--repeats", "1", "--strategy", "random",
            "--budgets", "0.2", "0.5", "--speed", "500", "--out", str(out)]
    NoPool.jobs, NoPool.answer = [], cached
    assert st.main(argv) == 0
    assert NoPool.jobs == []  # nothing replayed
    racing = pd.read_csv(out.with_suffix(".racing.csv"))
    assert list(racing["mode"]) == ["alone", "alone", "+ racing", "+ racing"]
    text = out.with_suffix(".md").read_text()
    assert "## Alone and + racing" in text and "| random | + racing | 50 % | 0.00" in text
    # a replay cached before racing was measured (no replay_seed, no curve) is replayed again
    old = {**cached, "table": [{k: v for k, v in r.items() if k not in ("replay_seed", "curve")}
                               for r in cached["table"]]}
    out.with_suffix(st.REPLAYS).write_text(json.dumps(old) + "\n")
    capsys.readouterr()
    assert st.main(argv) == 0
    assert len(NoPool.jobs) == 1 and "1 cached replays lack replay_seed or curve" in \
        capsys.readouterr().out
    # --no-racing reads it as before
    out.with_suffix(st.REPLAYS).write_text(json.dumps(old) + "\n")
    NoPool.jobs = []
    assert st.main([*argv, "--no-racing"]) == 0 and NoPool.jobs == []
