"""trainer_throughput's spectrum modes run on a tiny configuration and print their columns."""

from __future__ import annotations

import pytest

from benchmarks import spectrum_throughput, step_profile, trainer_throughput
from benchmarks.roofline import Roof
from nas.search.space.load import load_space

SPACE = spectrum_throughput.DEFAULT_SPACE
TINY = ["--threads", "1", "--images", "64", "--batch-size", "32", "--repeats", "1"]


def test_bench_points_are_the_positions_or_the_whole_grid():
    space = load_space(SPACE)
    positions = spectrum_throughput.bench_points(space, "positions")
    assert len(positions) == 12  # 6 spectrum positions x 2 op orders
    assert len(spectrum_throughput.bench_points(space, "all")) == 72
    groups = [p.groups() for p in positions if p.params["order"] == "dw_pw"]
    assert groups[0] == "1/1/1" and groups[-1] == "32/64/128"
    chosen = spectrum_throughput.select(positions, ["spectrum=0.8,order=pw_dw"])
    assert [p.params["spectrum"] for p in chosen] == [0.8]
    with pytest.raises(SystemExit, match="no point"):
        spectrum_throughput.select(positions, ["spectrum=0.7"])


def test_spectrum_mode_prints_the_table_and_the_lever_ratios(cifar_dir, capsys):
    summary = trainer_throughput.main([
        "--spectrum", *TINY, "--data-dir", str(cifar_dir), "--point", "spectrum=1.0",
        "--levers", "micro-batch-32", "--clock", "cpu"])
    out = capsys.readouterr().out
    for column in ("groups", "params", "MMAC/img", "img/s", "GFLOP/s", "micro-batch-32",
                   "x faster", "dloss"):
        assert column in out
    assert "32/64/128" in out and "order=pw_dw" in out and "order=dw_pw" in out
    assert set(summary["mean_seconds"]) == {"baseline", "micro-batch-32"}
    assert "x the baseline" in out


def test_profile_mode_prints_the_roofline_and_the_layers(cifar_dir, capsys, monkeypatch):
    roof = Roof(threads=1, dtype="float32", gflops=50.0, dram_gbs=10.0, cache_gbs=30.0,
                cache_bytes=32 * 2**20)
    monkeypatch.setattr(step_profile, "measure_roof", lambda dtype: roof)  # seconds saved
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
        "--data-dir", str(cifar_dir), "--point", "spectrum=1.0,order=dw_pw"])
    out = capsys.readouterr().out
    assert "1 trial x 2 threads" in out and "2 trials x 1 thread" in out
    assert summary["ratio"] > 0
