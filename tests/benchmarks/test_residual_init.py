"""The residual-init benchmark's table and point syntax, on the bench fixture (no training)."""

import pytest

from benchmarks import residual_init as ri
from nas.bench.table import load_bench
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from tests.benchkit import write_bench
from tests.searchkit import BENCH, variant

WITH_RESIDUAL = variant(BENCH, blocks={"residual": ["identity", "none"],
                                       "shared": ["spectrum", "order", "residual"]})


def test_a_point_is_name_value_pairs_with_the_residual_set():
    assert ri.parse_point("spectrum=1.0,order=pw_dw") == {"residual": "identity", "spectrum": 1.0,
                                                          "order": "pw_dw"}
    with pytest.raises(SystemExit, match="expected name=value pairs"):
        ri.parse_point("spectrum")


def test_the_table_sets_gamma_one_against_the_bench_and_checks_the_product_init(tmp_path):
    bench = load_bench(write_bench(tmp_path / "b", epochs=2, space=WITH_RESIDUAL))
    space = load_space(bench.run_dir / "bench.toml")
    point = ri.parse_point("spectrum=1.0,order=pw_dw")
    key = genotype(space, point).key()
    recorded = bench.points[key].curves
    runs = [{"key": key, "point": point, "seed": s, "zero_init": False,
             "curve": [0.1, recorded[s][-1] + 0.05]} for s in (0, 1)]
    runs.append({"key": key, "point": point, "seed": 0, "zero_init": True,
                 "curve": list(recorded[0])})
    text = ri.markdown(bench, runs, ["# t"])
    assert text.count("| +5.0 |") == 2
    assert "Mean Δ over 2 runs: **+5.0 ± 0.0 pp**" in text
    plain = bench.points[genotype(space, point | {"residual": "none"}).key()]
    assert f"| {100 * plain.curves[1][-1]:.1f} |" in text
    assert "equals the bench's curve" in text
    runs[-1]["curve"] = [0.0, 0.0]
    assert "**differs from** the bench's curve" in ri.markdown(bench, runs, ["# t"])
