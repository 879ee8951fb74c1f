"""trainer_throughput's spectrum modes run on a tiny configuration and print their columns."""

from __future__ import annotations

import pytest

from benchmarks import spectrum_points, spectrum_throughput, trainer_throughput
from nas.search.space.load import load_space

SPACE = spectrum_points.DEFAULT_SPACE
TINY = ["--threads", "1", "--images", "64", "--batch-size", "32", "--repeats", "1"]


def test_bench_points_are_the_positions_or_the_whole_grid():
    space = load_space(SPACE)
    positions = spectrum_points.bench_points(space, "positions")
    assert len(positions) == 12  # 6 spectrum positions x 2 op orders
    assert len(spectrum_points.bench_points(space, "all")) == 72
    groups = [p.groups() for p in positions if p.params["order"] == "dw_pw"]
    assert groups[0] == "1/1/1" and groups[-1] == "32/64/128"
    chosen = spectrum_points.select(positions, ["spectrum=0.8,order=pw_dw"])
    assert [p.params["spectrum"] for p in chosen] == [0.8]
    with pytest.raises(SystemExit, match="no point"):
        spectrum_points.select(positions, ["spectrum=0.7"])


def test_spectrum_mode_prints_the_table_and_the_lever_ratios(cifar_dir, capsys):
    summary = trainer_throughput.main([
        "--spectrum", *TINY, "--data-dir", str(cifar_dir), "--point", "spectrum=1.0",
        "--levers", "micro-batch-32", "system-malloc", "--clock", "cpu"])
    out = capsys.readouterr().out
    for column in ("groups", "params", "MMAC/img", "img/s", "GFLOP/s", "micro-batch-32",
                   "system-malloc", "x faster", "dloss"):
        assert column in out
    assert "point = spectrum order mid_act residual" in out
    assert "32/64/128" in out and "1.0 pw_dw none identity" in out and "1.0 dw_pw" in out
    assert set(summary["mean_seconds"]) == {"baseline", "micro-batch-32", "system-malloc"}
    assert "x the baseline" in out


def test_profile_mode_prints_the_roofline_and_the_layers(cifar_dir, capsys):
    trainer_throughput.main(["--profile", *TINY, "--data-dir", str(cifar_dir), "--steps", "1",
                             "--point", "spectrum=0.6,order=dw_pw,mid_act=none,residual=none"])
    out = capsys.readouterr().out
    assert "roofline at 1 thread(s)" in out
    assert "s1.b1.conv_dw1" in out and "conv 3x3 32->32 g8" in out and "roof %" in out
    assert "the " in out and "slowest layers take" in out


@pytest.mark.slow
def test_concurrency_mode_compares_threads_with_trials(cifar_dir, capsys):
    summary = trainer_throughput.main([
        "--concurrency", "--threads", "2", "--images", "64", "--batch-size", "32",
        "--data-dir", str(cifar_dir), "--point", "spectrum=1.0,order=dw_pw",
        "--levers", "system-malloc"])
    out = capsys.readouterr().out
    assert "1 trial x 2 threads" in out and "2 trials x 1 thread, system-malloc" in out
    assert summary["ratio"]["2 trials x 1 thread"] == 1.0
    assert summary["ratio"]["1 trial x 2 threads"] > 0


def test_variants_prepare_the_same_initial_weights(cifar_dir):
    space = load_space(SPACE)
    point = spectrum_points.bench_points(space)[-1]
    cfg = spectrum_points.train_config(space, "all", 32, 1)
    base, base_cfg = spectrum_throughput.prepared("baseline", point.arch, cfg)
    lever, lever_cfg = spectrum_throughput.prepared("micro-batch-64", point.arch, cfg)
    malloc, malloc_cfg = spectrum_throughput.prepared("system-malloc", point.arch, cfg)
    assert base_cfg.keep_freed_memory and not malloc_cfg.keep_freed_memory
    assert lever_cfg == base_cfg
    for a, b, c in zip(base.parameters(), lever.parameters(), malloc.parameters(), strict=True):
        assert a.equal(b) and a.equal(c)
