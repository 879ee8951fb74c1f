"""Measuring latency: each runtime at each batch, median and p90, each runtime's choice or why
it was skipped, and the row's columns."""

import json
import math
import sys

import pytest
import torch
from torch import nn

from nas.latency import runtimes
from nas.latency.measure import columns, measure, measure_many, time_runs
from nas.latency.settings import RUNTIMES_COLUMN, LatencyConfig, Setting

SHAPE = (3, 8, 8)
FAST = {"warmup": 1, "repeats": 3, "rounds": 2}  # a median and a p90, not a benchmark


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def assert_timed(measured, settings) -> None:
    for setting in settings:
        timing = measured.timings[setting]
        assert timing.runs == FAST["repeats"] * FAST["rounds"]
        assert 0 < timing.median_ms <= timing.p90_ms and math.isfinite(timing.p90_ms)


def test_torch_nchw_and_channels_last_at_two_batches_and_their_columns():
    model = tiny().train()
    config = LatencyConfig(runtimes=("torch", "torch_cl"), batches=(1, 2), **FAST)
    measured = measure(model, SHAPE, config)
    assert_timed(measured, config.settings())
    assert set(measured.timings) == set(config.settings()) and not measured.skipped
    assert "NCHW" in measured.choices["torch"] and "channels_last" in measured.choices["torch_cl"]
    assert "1 thread" in measured.choices["torch"]
    row = measured.record()
    assert set(row) == {RUNTIMES_COLUMN, *(s.name for s in config.settings()),
                        *(s.p90_name for s in config.settings())}
    assert row["latency_ms@torch_cl:b2"] == measured.timings[Setting("torch_cl", 2)].median_ms
    assert row["latency_p90_ms@torch:b1"] >= row["latency_ms@torch:b1"]
    assert json.loads(row[RUNTIMES_COLUMN]) == measured.choices
    # the caller's model is left as it was: training mode, NCHW weights
    assert model.training and model[0].weight.is_contiguous()


def test_threads_are_pinned_while_measuring_and_restored():
    before = torch.get_num_threads()
    config = LatencyConfig(runtimes=("torch",), threads=2, **FAST)
    measured = measure(tiny(), SHAPE, config)
    assert "2 threads" in measured.choices["torch"] and torch.get_num_threads() == before


def test_onnxruntime_is_measured_through_the_export():
    pytest.importorskip("onnxruntime")
    config = LatencyConfig(runtimes=("onnxruntime",), batches=(1, 3), **FAST)
    measured = measure(tiny(), SHAPE, config)
    assert_timed(measured, config.settings())
    assert measured.choices["onnxruntime"].startswith("onnxruntime ")


def test_a_missing_onnxruntime_is_said_and_the_other_runtimes_are_still_measured(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    config = LatencyConfig(runtimes=("torch", "onnxruntime"), **FAST)
    measured = measure(tiny(), SHAPE, config)
    assert_timed(measured, [Setting("torch", 1)])
    assert measured.skipped == {"onnxruntime": "onnxruntime not installed: pip install"
                                               " 'spectrum-nas[onnx]'"}
    assert runtimes.unavailable("onnxruntime") == measured.skipped["onnxruntime"]
    row = columns(config, measured)
    assert math.isnan(row["latency_ms@onnxruntime:b1"]) and row["latency_ms@torch:b1"] > 0
    assert json.loads(row[RUNTIMES_COLUMN])["onnxruntime"] == (
        "not measured: onnxruntime not installed: pip install 'spectrum-nas[onnx]'")


def test_bf16_is_measured_only_where_the_cpu_computes_it_natively(monkeypatch):
    monkeypatch.setenv("NAS_FAKE_CPU", "avx2")  # as a Zen 3 EPYC: bf16 emulated
    measured = measure(tiny(), SHAPE, LatencyConfig(runtimes=("torch_bf16", "torch"), **FAST))
    assert "no native bf16 here" in measured.skipped["torch_bf16"]
    assert Setting("torch", 1) in measured.timings
    assert runtimes.unavailable("torch_bf16") == measured.skipped["torch_bf16"]
    assert runtimes.unavailable("torch") is None


def test_a_runtime_that_fails_on_a_model_is_skipped_with_its_error(monkeypatch):
    real = runtimes.runner

    def runner(runtime, *args):
        if runtime == "torch_cl":
            raise RuntimeError("no kernel for this layer\nsecond line")
        return real(runtime, *args)

    monkeypatch.setattr("nas.latency.measure.runner", runner)
    measured = measure(tiny(), SHAPE, LatencyConfig(runtimes=("torch_cl", "torch"), **FAST))
    assert measured.skipped == {"torch_cl": "failed: RuntimeError: no kernel for this layer"}
    assert list(measured.timings) == [Setting("torch", 1)]


def test_columns_hold_every_configured_setting_nan_where_nothing_was_measured():
    config = LatencyConfig(runtimes=("torch", "onnxruntime"), batches=(1, 8))
    row = columns(config)  # an infeasible trial: nothing measured
    assert set(row) == {*(s.name for s in config.settings()),
                        *(s.p90_name for s in config.settings())}
    assert all(math.isnan(v) for v in row.values())


def test_rounds_interleave_the_runs_and_each_keeps_its_lowest_round_median(monkeypatch):
    calls: list[str] = []
    # a fake clock: each call takes the next scripted milliseconds (first a's, then b's per round)
    script = {"a": iter([9.0, 9.0, 9.0, 2.0, 3.0, 4.0]), "b": iter([1.0, 5.0, 6.0, 7.0, 7.0, 7.0])}
    clock = [0.0]

    def run(key):
        def call():
            calls.append(key)
            if len(calls) > 2:  # past the two warm-up calls
                clock[0] += next(script[key]) / 1e3
        return call

    monkeypatch.setattr("nas.latency.measure.time.perf_counter", lambda: clock[0])
    timings = time_runs({"a": run("a"), "b": run("b")}, warmup=1, repeats=3, rounds=2)
    assert calls == ["a", "b"] + ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    assert timings["a"].median_ms == pytest.approx(3.0)  # round medians 9 and 3
    assert timings["b"].median_ms == pytest.approx(5.0)  # round medians 5 and 7
    assert timings["a"].runs == timings["b"].runs == 6
    assert timings["a"].p90_ms == pytest.approx(9.0) and timings["b"].p90_ms == pytest.approx(7.0)


def test_several_models_are_measured_together_and_a_failing_one_does_not_stop_the_others():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot run")

    config = LatencyConfig(runtimes=("torch", "torch_cl"), **FAST)
    found = measure_many({"ok": tiny(), "broken": Broken()}, SHAPE, config)
    assert_timed(found["ok"], config.settings())
    assert not found["broken"].timings
    assert found["broken"].skipped == {"torch": "failed: RuntimeError: cannot run",
                                       "torch_cl": "failed: RuntimeError: cannot run"}
