"""Reading a bench back: points, regret and rank by hand, malformed files refused in one line."""

import json

import pandas as pd
import pytest

from nas.bench.table import BenchError, load_bench
from nas.latency.settings import latency_names
from nas.results.atomic import write_json
from nas.results.names import TABLE
from nas.results.table import read_csv
from tests.benchkit import final_of, write_bench
from tests.searchkit import ROOT


def test_a_bench_reads_back_with_regret_and_rank_by_hand(tmp_path):
    bench = load_bench(write_bench(tmp_path / "b", epochs=3))
    assert len(bench.points) == 4 and bench.epochs == 3 and bench.seeds == 2
    finals = {i: sum(final_of(i)) / 2 for i in range(4)}  # 0.31, 0.36, 0.41, 0.46
    best = bench.best()
    assert best.final == pytest.approx(finals[3])
    table = pd.read_csv(tmp_path / "b" / TABLE)
    first = table.loc[0, "arch_key"]  # final_of(0): the worst point
    assert bench.regret(first) == pytest.approx(finals[3] - finals[0]) == pytest.approx(0.15)
    assert bench.rank(first) == 4 and bench.rank(best.key) == 1
    assert bench.points[first].at(1) == pytest.approx(finals[0] / 3, abs=1e-4)
    # each epoch took 2 (i + 1) seconds for the two seeds together: (i + 1) per seed
    assert bench.points[first].epoch_seconds == (1.0, 1.0, 1.0)
    assert bench.compute_s() == pytest.approx(sum(2 * 3 * (i + 1) for i in range(4)))


@pytest.mark.parametrize(("column", "value", "message"), [
    ("seed_curves", "[[0.1, 0.2]]", r"line 2 seed_curves: expected 3 values per seed"),
    ("seed_curves", "not json", r"line 2 seed_curves: not a JSON list"),
    ("seed_curves", "[[0.1, 0.2, 1.5], [0.1, 0.2, 0.3]]", r"line 2: accuracies must lie"),
    ("epoch_s_curve", "[1, NaN, 2]", r"line 2 epoch_s_curve: "),
    ("params", "many", r"line 2: params, macs and latency_ms must be numbers"),
])
def test_a_malformed_bench_is_one_line_naming_the_file(tmp_path, column, value, message):
    folder = write_bench(tmp_path / "b", epochs=3)
    table = pd.read_csv(folder / TABLE)
    table[column] = table[column].astype(object)
    table.loc[0, column] = value
    table.to_csv(folder / TABLE, index=False)
    with pytest.raises(BenchError, match=message) as err:
        load_bench(folder)
    assert str(folder / TABLE) in str(err.value) and "\n" not in str(err.value)


def test_missing_columns_files_and_points_are_refused(tmp_path):
    with pytest.raises(BenchError, match="not a bench folder"):
        load_bench(tmp_path)
    folder = write_bench(tmp_path / "b")
    pd.read_csv(folder / TABLE).drop(columns=["seed_curves"]).to_csv(folder / TABLE, index=False)
    with pytest.raises(BenchError, match="missing columns: seed_curves"):
        load_bench(folder)
    folder = write_bench(tmp_path / "c")
    table = pd.read_csv(folder / TABLE).assign(status="failed")
    table.to_csv(folder / TABLE, index=False)
    with pytest.raises(BenchError, match="no completed point"):
        load_bench(folder)
    write_json(folder / "meta.json", {"space_file": "bench.toml"})
    with pytest.raises(BenchError, match=r"no budget\.epochs"):
        load_bench(folder)
    assert json.loads((folder / "meta.json").read_text())  # still readable JSON


def test_each_runtimes_latency_is_read_where_the_bench_measured_it(tmp_path):
    folder = write_bench(tmp_path / "b")
    table = pd.read_csv(folder / TABLE)
    table["latency_ms@torch:b1"] = [0.5 + i for i in range(len(table))]
    table["latency_p90_ms@torch:b1"] = table["latency_ms@torch:b1"] + 0.1
    table["latency_ms@onnxruntime:b1"] = [0.2, None, 0.3, 0.4]  # one point could not run it
    table.to_csv(folder / TABLE, index=False)
    points = {p.key: p for p in load_bench(folder).points.values()}
    first, second = (points[k] for k in table["arch_key"][:2])
    assert first.latencies == (("latency_ms@torch:b1", 0.5), ("latency_ms@onnxruntime:b1", 0.2))
    assert second.latencies == (("latency_ms@torch:b1", 1.5),)


def test_a_committed_bench_from_before_the_latency_section_still_reads():
    committed = ROOT / "results" / "bench" / "spectrum_bench"
    assert not latency_names(read_csv(committed / TABLE).columns)
    bench = load_bench(committed)
    assert all(p.latencies == () and p.latency_ms > 0 for p in bench.points.values())
