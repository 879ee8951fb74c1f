"""The latency benchmarks' arithmetic: the error statistics, the fronts' enter/leave lists, the
resumable record, the spread of a limited run (no timing is measured here)."""

from __future__ import annotations

import json

import pytest

from benchmarks.latency_model import repeatability, scaled_within, summary
from benchmarks.latency_points import Point, open_record, pick, save_record
from benchmarks.latency_runtimes import fronts, tau_matrix

NAME = "latency_ms@torch:b1"


def _point(key: str, macs: int, accuracy: float) -> Point:
    return Point(key, None, key, macs, macs, accuracy, 2)  # type: ignore[arg-type]


def test_summary_counts_the_band_and_signs_the_error():
    s = summary([1.05, 1.8, 3.3, 3.0], [1.0, 2.0, 3.0, 4.0], [1, 2, 3, 4])
    assert s["points"] == 4 and s["within"] == 0.75  # +5 %, -10 %, +10 % in; -25 % out
    assert s["tau"] == pytest.approx(4 / 6) and s["tau_macs"] == pytest.approx(1.0)  # 1 swap
    assert s["worst"] == pytest.approx(-0.25) and s["bias"] == pytest.approx(-0.05)


def test_fronts_list_the_points_entering_and_leaving_against_the_macs_front():
    points = [_point("a", 1, 0.50), _point("b", 2, 0.60), _point("c", 3, 0.55)]
    entries = [{"label": p.key, "median": {NAME: ms}, "macs": p.macs, "params": p.macs}
               for p, ms in zip(points, (2.0, 3.0, 1.0), strict=True)]
    rows = fronts([NAME], points, entries)
    macs_row, torch_row = rows[2], rows[3]
    assert macs_row.startswith("| MACs | 2 | a (50.0 %); b (60.0 %) | - | - |")
    # on torch c (55 %) is the fastest: it enters, and a (slower, worse) leaves
    assert torch_row == "| torch:b1 | 2 | c (55.0 %); b (60.0 %) | c | a |"
    assert tau_matrix([NAME], entries)[2] == "| torch:b1 | 1.000 |"


def test_a_record_resumes_with_its_settings_and_refuses_others(tmp_path):
    path = tmp_path / "r.json"
    record = open_record(path, {"runtimes": ["torch"], "bench": tmp_path})
    record["points"]["k"] = {"median": {NAME: 1.0}}
    save_record(path, record)
    again = open_record(path, {"runtimes": ["torch"], "bench": tmp_path})
    assert again["points"] == {"k": {"median": {NAME: 1.0}}}
    with pytest.raises(SystemExit, match=str(path)):
        open_record(path, {"runtimes": ["onnxruntime"], "bench": tmp_path})
    assert json.loads(path.read_text())["settings"]["bench"] == str(tmp_path)


def test_a_limited_run_spreads_its_points_over_the_bench():
    points = [_point(str(i), i, 0.5) for i in range(10)]
    assert [p.key for p in pick(points, 5)] == ["0", "2", "4", "6", "8"]
    assert pick(points, None) == points and pick(points, 20) == points


def test_repeatability_compares_two_runs_measurements_and_predictions(tmp_path):
    from nas.latency.settings import Setting

    table = f"{NAME} none:cold"

    def record(measured: list[float], predicted: list[float]) -> dict:
        keys = "abcd"
        return {"points": {k: {"median": {NAME: m}} for k, m in zip(keys, measured, strict=True)},
                "predicted": {table: {k: {"ms": p}
                                      for k, p in zip(keys, predicted, strict=True)}}}

    mine = record([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    other = record([1.05, 1.8, 3.3, 3.0], [1.0, 2.0, 3.0, 4.4])
    lines = repeatability(mine, other, {table: (Setting("torch", 1), None)}, tmp_path / "x")
    row = next(line for line in lines if line.startswith(f"| {table}"))
    # measured vs its measured: one swap in six pairs; 1.0/1.05 and 3.0/3.3 within ±10 %
    assert row == (f"| {table} | τ 0.667, 50 % within ±10 % | τ 1.000, 100 % within ±10 % |"
                   " τ 0.667, 50 % within ±10 % |")


def test_one_scale_is_fitted_on_every_nth_point_and_judged_on_the_rest():
    pred = [1.0, 1.0, 2.0, 2.0, 4.0, 4.0]
    meas = [1.1, 1.1, 2.2, 2.6, 4.4, 4.3]  # fitted on points 0, 2, 4: all 1.1x
    scale, share, held = scaled_within(pred, meas, every=2)
    assert scale == pytest.approx(1.1) and held == 3
    assert share == pytest.approx(2 / 3)  # 1.1 vs 1.1 and 4.4 vs 4.3 in; 2.2 vs 2.6 out
