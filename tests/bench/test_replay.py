"""Replaying a search against a bench through the real stack (Ray Tune, Optuna, ASHA)."""

import json

import pandas as pd
import pytest

from nas.bench.replay import check_objective, replay_seed
from nas.bench.table import BenchError, load_bench
from nas.dashboard.data import load_run
from nas.dashboard.page import payload
from nas.results.meta import read_meta
from nas.results.names import TABLE
from nas.results.table import read_table
from nas.search.space.load import load_space
from tests.benchkit import write_bench
from tests.searchkit import BENCH, run_cli, variant, write_space

# The bench's own points, searched by TPE with ASHA as the default search runs.
SEARCH = variant(BENCH, search={"sampler": "tpe", "trials": 6, "grace_period": 1,
                                 "reduction_factor": 2})


def test_replay_reports_the_bench_curves_through_ray_optuna_and_asha(tmp_path):
    bench_dir = write_bench(tmp_path / "bench", epochs=2)
    bench = load_bench(bench_dir)
    space = write_space(tmp_path, SEARCH, "search.toml")
    done = run_cli("--space", str(space), "--replay", str(bench_dir), "--replay-speed", "20",
                   "--name", "r", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = read_table(tmp_path / "r")
    assert len(table) == 6 and set(table["status"]) <= {"completed", "stopped"}
    for _, row in table.iterrows():
        point = bench.points[row["arch_key"]]
        seed, epochs = int(row["replay_seed"]), int(row["epochs"])
        assert json.loads(row["curve"]) == list(point.curves[seed][:epochs])
        assert row["simulated_s"] == pytest.approx(sum(point.epoch_seconds[:epochs]))
        assert row["latency_ms"] == point.latency_ms
    assert f"Simulated compute: {table['simulated_s'].sum():,.0f} s" in done.stdout
    assert read_meta(tmp_path / "r")["replay"]["bench_points"] == 4
    # the dashboard opens a replayed run like any other
    data = payload(load_run(tmp_path / "r"))
    assert data["html"].count('data-status="') == 6 and data["figures"]


def test_a_space_the_bench_does_not_cover_is_refused_before_any_trial(tmp_path):
    bench_dir = write_bench(tmp_path / "bench", epochs=2)
    wider = variant(SEARCH, blocks={"spectrum": [0.0, 0.5, 1.0]})
    space = write_space(tmp_path, wider, "wider.toml")
    done = run_cli("--space", str(space), "--replay", str(bench_dir), "--name", "w",
                   "--results-dir", str(tmp_path))
    assert done.returncode == 2
    assert "point(s) of" in done.stderr and "are not in the bench" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert read_table(tmp_path / "w").empty  # nothing was trained or replayed


def test_each_trial_draws_a_repeatable_seed():
    seeds = [replay_seed(f"t{i}", 0, 2) for i in range(40)]
    assert seeds == [replay_seed(f"t{i}", 0, 2) for i in range(40)] and set(seeds) == {0, 1}


def test_a_latency_objective_the_bench_did_not_measure_is_refused(tmp_path):
    folder = write_bench(tmp_path / "b")
    objective = "latency_ms@onnxruntime:b1"
    space = load_space(write_space(tmp_path, variant(
        SEARCH, latency={"runtimes": ["torch", "onnxruntime"]},
        objectives={"metrics": ["val_acc", objective]})))
    with pytest.raises(BenchError, match=rf"{folder}: 4 point\(s\) did not measure {objective}"
                       r" \(the bench measured: latency_ms only\); replay an objective"):
        check_objective(load_bench(folder), space)
    table = pd.read_csv(folder / TABLE).assign(**{objective: 0.25})
    table.to_csv(folder / TABLE, index=False)
    bench = load_bench(folder)
    check_objective(bench, space)  # measured at every point: what its trials will report
    assert all(dict(p.latencies) == {objective: 0.25} for p in bench.points.values())
