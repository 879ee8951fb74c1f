"""Latency settings: the [latency] section's checks, and the latency_ms@RUNTIME:bN names."""

import pytest

from nas.latency.settings import (
    RUNTIMES,
    RUNTIMES_COLUMN,
    LatencyConfig,
    LatencyError,
    Setting,
    is_latency_column,
    latency_names,
    parse,
)


def test_a_setting_is_named_as_its_column_and_parsed_back():
    setting = Setting("onnxruntime", 1)
    assert setting.name == "latency_ms@onnxruntime:b1"
    assert setting.p90_name == "latency_p90_ms@onnxruntime:b1"
    assert parse(setting.name) == setting
    for runtime in RUNTIMES:
        assert parse(Setting(runtime, 32).name) == Setting(runtime, 32)


@pytest.mark.parametrize(("name", "expected"), [
    ("latency_ms@onnxruntime", "is not a latency name: latency_ms@RUNTIME:bBATCH"),
    ("latency_ms", "is not a latency name"),
    ("latency_ms@tflite:b1", "unknown runtime 'tflite' (allowed: torch, torch_cl, torch_bf16,"
                             " onnxruntime, torch_compile)"),
    ("latency_ms@torch:b0", "the batch size must be >= 1"),
])
def test_a_bad_name_is_a_one_line_error_saying_what_is_allowed(name, expected):
    with pytest.raises(LatencyError) as err:
        parse(name)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_settings_are_every_runtime_at_every_batch_in_the_order_given():
    config = LatencyConfig(runtimes=("onnxruntime", "torch"), batches=(8, 1))
    assert [s.name for s in config.check().settings()] == [
        "latency_ms@onnxruntime:b8", "latency_ms@onnxruntime:b1", "latency_ms@torch:b8",
        "latency_ms@torch:b1"]
    assert LatencyConfig().settings() == (Setting("torch", 1),)  # a section left out: cheap


@pytest.mark.parametrize(("fields", "expected"), [
    ({"runtimes": ("tflite",)}, "[latency].runtimes: unknown runtime 'tflite' (allowed:"),
    ({"runtimes": ("torch", "torch")}, "[latency].runtimes: ['torch', 'torch'] repeats a"),
    ({"runtimes": ()}, "[latency]: runtimes and batches need at least one entry each"),
    ({"batches": ()}, "[latency]: runtimes and batches need at least one entry each"),
    ({"batches": (1, 0)}, "[latency].batches: 0 must be >= 1"),
    ({"batches": (4, 4)}, "[latency].batches: [4, 4] repeats a batch size"),
    ({"threads": 0}, "[latency].threads: 0 must be >= 1"),
    ({"warmup": -1}, "[latency].warmup: -1 must be >= 0"),
    ({"repeats": 2}, "[latency].repeats: 2 must be >= 3"),
])
def test_check_names_the_field_and_what_is_allowed(fields, expected):
    with pytest.raises(LatencyError) as err:
        LatencyConfig(**fields).check()
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_the_recorded_columns_are_told_apart_from_the_others():
    columns = ["latency_ms", "latency_ms@torch:b1", "latency_p90_ms@torch:b1", RUNTIMES_COLUMN,
               "macs", "latency_ms@onnxruntime:b8"]
    assert [c for c in columns if is_latency_column(c)] == columns[1:4] + columns[5:]
    assert latency_names(columns) == ["latency_ms@torch:b1", "latency_ms@onnxruntime:b8"]
