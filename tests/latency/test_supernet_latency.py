"""The supernet's scored points with their predicted latency, ranked by fronts on request."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from nas.arch.genotype import Genotype
from nas.latency.model import LatencyModel
from nas.latency.settings import LatencyConfig, LatencyError
from nas.results.names import SUPERNET_CSV, SUPERNET_JSON
from nas.results.table import read_csv
from nas.search.engine import SearchOptions
from nas.supernet.latency import FRONT, predicted_column, with_latency
from nas.supernet.paths import SupernetError
from nas.supernet.run import SupernetRequest, check_request, run_supernet
from tests.latency.test_model import tiny
from tests.searchkit import SUPERNET, write_space

FAST = LatencyConfig(warmup=1, repeats=3, rounds=1)
NAME = "latency_ms@torch:b1"


def _scores() -> pd.DataFrame:
    archs = [tiny(groups=g) for g in (1, 2, 4, 8)]
    table = pd.DataFrame({"arch_key": [a.key() for a in archs], "score": [0.6, 0.5, 0.5, 0.4],
                          "macs": [4, 3, 2, 1], "genotype": [a.to_json(None) for a in archs]})
    table.insert(0, "rank", range(1, 5))
    return table


def test_each_point_gets_its_prediction_and_front_and_the_order_stays(tmp_path):
    table, model = with_latency(_scores(), NAME, pareto=False, config=FAST, folder=tmp_path)
    column = predicted_column(NAME)
    assert column == "predicted_latency_ms@torch:b1"
    again = LatencyModel("torch", 1, FAST, tmp_path)
    expected = [again.predict(Genotype.from_json(g)) for g in table["genotype"]]
    assert table[column].tolist() == expected and model.table.path == again.table.path
    assert table["score"].tolist() == [0.6, 0.5, 0.5, 0.4] and list(table["rank"]) == [1, 2, 3, 4]
    assert table[FRONT].min() == 1


def test_pareto_ranks_front_by_front_then_by_score(tmp_path):
    table, _ = with_latency(_scores(), NAME, pareto=True, config=FAST, folder=tmp_path)
    assert list(table["rank"]) == [1, 2, 3, 4] and table[FRONT].is_monotonic_increasing
    for _, part in table.groupby(FRONT):
        assert part["score"].is_monotonic_decreasing
    assert not math.isnan(table[predicted_column(NAME)].sum())


@pytest.fixture
def request_(tmp_path) -> SupernetRequest:
    space = write_space(tmp_path, SUPERNET)
    return SupernetRequest(Path(space), SearchOptions(space=Path(space), results_dir=tmp_path))


def test_pareto_needs_a_latency_and_a_latency_must_be_a_setting(request_):
    with pytest.raises(SupernetError, match="--latency"):
        check_request(dataclasses.replace(request_, pareto=True))
    with pytest.raises(LatencyError, match="latency_ms@RUNTIME:bBATCH"):
        check_request(dataclasses.replace(request_, latency="onnxruntime"))
    check_request(dataclasses.replace(request_, latency="latency_ms@onnxruntime:b1",
                                      pareto=True))


def test_a_scored_run_with_latency_writes_the_column_and_ranks_by_fronts(
        tmp_path, cifar_dir, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # the product's 30 timed runs per row add nothing to what this checks
    monkeypatch.setattr("nas.supernet.run.with_latency", functools.partial(with_latency,
                                                                          config=FAST))
    space = write_space(tmp_path, SUPERNET)
    options = SearchOptions(space=space, results_dir=tmp_path, name="p", data_dir=cifar_dir,
                            concurrency=1)
    assert run_supernet(SupernetRequest(space, options, top_k=0, rank="params",
                                        latency=NAME, pareto=True)) == 0
    table = read_csv(tmp_path / "p" / SUPERNET_CSV)
    assert len(table) == 64 and table[predicted_column(NAME)].notna().all()
    assert table[FRONT].is_monotonic_increasing and table[FRONT].iloc[0] == 1
    record = json.loads((tmp_path / "p" / SUPERNET_JSON).read_text())
    assert record["settings"]["latency"] == NAME and record["settings"]["pareto"] is True
    assert str(tmp_path / "cache") in record["latency_table"]["path"]


def test_a_runtime_this_machine_lacks_is_refused_before_anything_trains(
        request_, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_FAKE_CPU", "avx2")  # bf16 emulated: torch_bf16 is not measured
    request = dataclasses.replace(request_, latency="latency_ms@torch_bf16:b1")
    with pytest.raises(LatencyError, match="torch_bf16: no native bf16"):
        run_supernet(request)
    assert list(tmp_path.iterdir()) == [tmp_path / "space.toml"]  # no run folder
