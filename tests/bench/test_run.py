"""Benches: every point trained with every seed's curve, and continued from the table alone."""

import json
import shutil

import pandas as pd
import pytest

from nas.bench.run import BenchError, bench_points, check_bench_space
from nas.dashboard.data import load_run
from nas.dashboard.page import payload
from nas.results.names import EXPERIMENT, OPTUNA_DB, PARQUET, TABLE
from nas.results.table import read_table
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from tests.searchkit import BENCH, TINY, run_cli, write_space


def test_points_are_every_distinct_architecture_in_a_fixed_order(tmp_path):
    space = load_space(write_space(tmp_path, BENCH))
    points = bench_points(space)
    assert len(points) == 4 and points == bench_points(space)  # seeded order
    assert len({genotype(space, p).key() for p in points}) == 4
    assert {(p["spectrum"], p["order"]) for p in points} == {
        (s, o) for s in (0.0, 1.0) for o in ("dw_pw", "pw_dw")}


def test_a_space_with_early_stopping_is_no_bench(tmp_path):
    space = load_space(write_space(tmp_path, TINY))
    with pytest.raises(BenchError, match="grace_period = 1 lets ASHA stop"):
        check_bench_space(space, space.train.epochs)


def test_a_zero_epoch_bench_is_refused_not_read_as_the_default(tmp_path):
    space_file = write_space(tmp_path, BENCH)
    done = run_cli("bench", str(space_file), "--max-epochs", "0", "--name", "b",
                   "--results-dir", str(tmp_path))
    assert done.returncode == 2 and "--max-epochs: 0 must be >= 1" in done.stderr
    assert not (tmp_path / "b").exists()


def _completed(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"] == "completed"]


def test_bench_trains_every_point_and_continues_from_its_table(tmp_path):
    space_file = write_space(tmp_path, BENCH)
    done = run_cli("bench", str(space_file), "--name", "b", "--results-dir", str(tmp_path),
                   timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "4 of 4 points done" in done.stdout
    run_dir = tmp_path / "b"
    table = read_table(run_dir)
    assert len(_completed(table)) == 4 and set(table["epochs"]) == {2}
    for _, row in table.iterrows():
        seeds, losses = json.loads(row["seed_curves"]), json.loads(row["seed_loss_curves"])
        assert len(seeds) == len(losses) == 2 and all(len(c) == 2 for c in seeds + losses)
        # the mean curve is the mean of the seeds' curves, epoch by epoch
        mean = [sum(epoch) / 2 for epoch in zip(*seeds, strict=True)]
        assert json.loads(row["curve"]) == pytest.approx(mean)
        assert seeds[0] != seeds[1]  # two seeds really trained
        assert len(json.loads(row["epoch_s_curve"])) == 2

    # What a fresh clone holds: the committed table, meta.json and the space, no Ray state.
    keep = table.iloc[:2]
    keep.to_csv(run_dir / TABLE, index=False)
    shutil.rmtree(run_dir / EXPERIMENT)
    (run_dir / OPTUNA_DB).unlink()
    (run_dir / PARQUET).unlink()
    again = run_cli("bench", "--resume", "--name", "b", "--results-dir", str(tmp_path),
                    timeout=600)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "2 of 4 points to train" in again.stdout
    table = read_table(run_dir)
    assert len(_completed(table)) == 4 and len(table) == 4  # nothing repeated
    assert table.set_index("trial_id").loc[keep["trial_id"], "curve"].tolist() \
        == keep["curve"].tolist()  # the earlier rows untouched

    data = payload(load_run(run_dir))  # the dashboard opens a bench folder like any run
    assert data["html"].count('data-status="completed"') == 4
    nothing = run_cli("bench", "--resume", "--name", "b", "--results-dir", str(tmp_path))
    assert nothing.returncode == 0 and "all 4 points done" in nothing.stdout
