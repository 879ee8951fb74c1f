"""Latency per runtime in a real search: every trial row records each [latency] setting, NSGA-II
is told the one named as an objective, and a machine without ONNX Runtime says so in each row
while the other runtimes are still measured."""

from __future__ import annotations

import json
import math
import os

import optuna
import pandas as pd

from nas.latency.settings import RUNTIMES_COLUMN
from nas.results.names import OPTUNA_DB, OPTUNA_TRIAL_ATTR
from nas.results.table import read_table
from tests.conftest import SEARCH_OUT
from tests.searchkit import LATENCY, run_cli, variant, write_space

SETTINGS = [f"{runtime}:b{batch}" for runtime in ("torch", "torch_cl", "onnxruntime")
            for batch in (1, 2)]
MISSING = "onnxruntime not installed: pip install 'spectrum-nas[onnx]'"


def assert_measured(row: pd.Series, setting: str) -> None:
    median, p90 = row[f"latency_ms@{setting}"], row[f"latency_p90_ms@{setting}"]
    assert math.isfinite(median) and 0 < median <= p90 and math.isfinite(p90), (setting, row)


def test_every_trial_records_each_runtimes_latency_and_nsga2_is_told_one(latency_run):
    table = read_table(latency_run)
    assert len(table) == 3 and (table["status"] == "completed").all()
    for _, row in table.iterrows():
        for setting in SETTINGS:
            assert_measured(row, setting)
        assert row["latency_ms"] > 0  # the training-precision column is kept as it was
        choices = json.loads(row[RUNTIMES_COLUMN])
        assert set(choices) == {"torch", "torch_cl", "onnxruntime"}
        assert "NCHW" in choices["torch"] and "channels_last" in choices["torch_cl"]
        assert choices["onnxruntime"].startswith("onnxruntime ") and "1 intra-op thread" in (
            choices["onnxruntime"])
    # the second objective Optuna holds is each trial's measured ONNX Runtime latency
    storage = f"sqlite:///{latency_run / OPTUNA_DB}"
    study = optuna.load_study(study_name=latency_run.name, storage=storage)
    told = {t.user_attrs[OPTUNA_TRIAL_ATTR]: t.values for t in study.trials
            if OPTUNA_TRIAL_ATTR in t.user_attrs}  # screened proposals were never trials
    by_id = table.set_index("trial_id")
    assert set(told) == set(by_id.index)
    for trial_id, values in told.items():
        assert values[1] == by_id.loc[trial_id, "latency_ms@onnxruntime:b1"]
    # the summary prints the best trial's medians, compactly
    out = (latency_run.parent / SEARCH_OUT).read_text()
    line = next(x for x in out.splitlines() if "latency per runtime" in x)
    assert line.strip().startswith("latency per runtime (CPU, median ms): ")
    assert all(f"{setting} " in line for setting in SETTINGS)


def hide_onnxruntime(tmp_path) -> dict[str, str]:
    """An environment whose Python finds no onnxruntime, as one without the onnx extra."""
    hidden = tmp_path / "without" / "onnxruntime"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')\n")
    path = os.pathsep.join(p for p in (str(hidden.parent), os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path)


def test_without_onnxruntime_each_row_says_why_and_torch_is_still_measured(tmp_path, cifar_dir):
    env = hide_onnxruntime(tmp_path) | {"NAS_DATA_DIR": str(cifar_dir)}
    plain = variant(LATENCY, objectives={"metrics": ["val_acc"]},
                    search={"sampler": "random", "trials": 1},
                    latency={"runtimes": ["torch", "onnxruntime"], "batches": [1]})
    space = write_space(tmp_path, plain)
    dry = run_cli("--space", str(space), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert f"onnxruntime not measured here ({MISSING})" in dry.stdout
    done = run_cli("--space", str(space), "--name", "r", "--results-dir", str(tmp_path),
                   env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    row = read_table(tmp_path / "r").iloc[0]
    assert row["status"] == "completed"
    assert_measured(row, "torch:b1")
    assert math.isnan(row["latency_ms@onnxruntime:b1"])
    assert json.loads(row[RUNTIMES_COLUMN])["onnxruntime"] == f"not measured: {MISSING}"
    assert f"onnxruntime not measured: {MISSING}" in done.stdout


def test_an_objective_on_a_runtime_this_machine_lacks_is_refused_in_one_line(tmp_path):
    space = write_space(tmp_path, LATENCY)
    done = run_cli("--space", str(space), "--name", "r", "--results-dir", str(tmp_path),
                   env=hide_onnxruntime(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert (f"[objectives].metrics: latency_ms@onnxruntime:b1 cannot be measured on this"
            f" machine: {MISSING}") in lines[0]
    assert not (tmp_path / "r").exists()
