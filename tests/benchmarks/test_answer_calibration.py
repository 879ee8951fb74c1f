"""benchmarks/answer_calibration.py on a hand-written bench: its tables, seed pooling across
bench folders, and a clear winner found every time."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import answer_calibration as ac

GROUPS, ORDERS, RESIDUALS = ("1", "4", "32"), ("dw_pw", "pw_dw"), ("identity", "none")


def write_bench(folder, seeds=(0, 1), winner=0.0, first_seed=0, keys=None):
    """A 3 x 2 x 2 bench: additive truth, seed offsets ±.01 (so the seed sd is about 1 pt);
    `winner` is added to the first point's accuracy."""
    folder.mkdir(parents=True)
    rows = []
    for i, (g, o, r) in enumerate((g, o, r) for g in GROUPS for o in ORDERS for r in RESIDUALS):
        key = f"p{i:02d}"
        if keys is not None and key not in keys:
            continue
        mean = 0.55 + 0.01 * GROUPS.index(g) + 0.03 * (o == "pw_dw") - 0.01 * (r == "none")
        mean += winner if i == 0 else 0.0
        offsets = [(-0.01, 0.01, -0.005, 0.005)[s % 4] * (1 + i % 3) / 2 for s in seeds]
        curves = [[round(mean + d - 0.1, 4), round(mean + d, 4)] for d in offsets]
        rows.append({"trial_id": key, "status": "completed", "arch_key": key, "params": 1000,
                     "macs": 10_000, "latency_ms": 1.0 + i, "seed_curves": json.dumps(curves),
                     "epoch_s_curve": json.dumps([10.0 * len(seeds)] * 2), "wall_s": 25.0,
                     "s1_width": 32, "s1_groups": int(g), "s1_order": o, "s1_residual": r})
    pd.DataFrame(rows).to_csv(folder / "trials.csv", index=False)
    (folder / "meta.json").write_text(json.dumps({"budget": {"epochs": 2, "seed": first_seed}}))
    return folder


def test_the_report_has_every_mode_and_method_and_says_it_has_two_seeds(tmp_path, capsys):
    bench = write_bench(tmp_path / "bench")
    out = tmp_path / "ac.md"
    assert ac.main(["--bench", str(bench), "--repeats", "3", "--out", str(out)]) == 0
    text = out.read_text()
    assert "12 points after 2 epochs: 12 points with 2 seeds" in text
    for mode in ac.MODES:
        assert f"| {mode} | 3 | " in text, mode
        for method in ("pooled", "robust", "pairs"):
            assert f"| {mode} | {method} | " in text, (mode, method)
    assert "| s1_groups | " in text and "Resampled with 2 seeds at 12 of 12 points" in text
    assert text in capsys.readouterr().out  # printed too


def test_extra_folders_add_seeds_to_the_points_they_match(tmp_path):
    bench = write_bench(tmp_path / "bench")
    write_bench(tmp_path / "more", seeds=(2, 3), first_seed=2, keys={"p00", "p05"})
    loaded = ac.load(bench, [tmp_path / "more"])
    assert loaded.points["p00"].seeds == (0, 1, 2, 3) and len(loaded.points["p01"].accs) == 2
    assert "10 points with 2 seeds, 2 points with 4 seeds" in loaded.note
    assert "more: 2 of its 2 points matched" in loaded.note


def test_a_clear_winner_is_the_whole_tier_and_costs_no_regret(tmp_path):
    loaded = ac.load(write_bench(tmp_path / "bench", winner=0.10), [])
    truth = ac.truth_of(loaded)
    assert truth.best == "p00"
    # the truth's effects are the additive ones written above (p00's bonus aside: it moves
    # the level means of groups 1, dw_pw and identity by .1 / 4, / 6 and / 6)
    assert truth.effects[(1, "pw_dw")] == pytest.approx(0.03 - 0.10 / 6)
    settings = ac.VerifySettings(budget_core_s=1000.0)
    rng = ac.random.Random(0)
    for mode in ac.MODES:
        run = ac.simulate(loaded, truth, mode, settings, rng,
                          {k: 0.01 for k in loaded.points})
        assert run["contains_best"] and run["tier"] == 1, (mode, run)
        assert run["regret_leader"] == run["regret_pick"] == 0.0


def test_a_bench_with_one_seed_a_point_is_refused(tmp_path):
    bench = write_bench(tmp_path / "bench", seeds=(0,))
    with pytest.raises(SystemExit, match="at least 2 seeds"):
        ac.main(["--bench", str(bench), "--repeats", "1"])
