"""What a bench report says, checked against the fixture's known curves."""

import json
import os

import pandas as pd
import pytest

from nas.bench import report
from nas.bench.reuse import REUSED_FROM
from nas.bench.run import bench_points
from nas.bench.table import load_bench
from nas.results.meta import read_meta
from nas.results.names import BENCH_HTML, BENCH_MD, BENCH_PNG, TABLE
from nas.results.table import read_table
from nas.search.space.load import load_space
from nas.search.space.points import genotype
from tests.benchkit import final_of, write_bench
from tests.searchkit import BENCH, ROOT, run_cli, variant


@pytest.fixture
def folder(tmp_path):
    return write_bench(tmp_path / "bench", epochs=3)


def test_tables_taus_and_front_of_the_fixture(folder):
    bench = load_bench(folder)
    frame = report.point_frame(bench)
    assert sorted(frame["mean"]) == pytest.approx([sum(final_of(i)) / 2 for i in range(4)])
    assert report.seed_tau(bench) == pytest.approx(1.0)  # both seeds rank the points alike
    assert report.epoch_taus(bench) == pytest.approx([1.0, 1.0, 1.0])
    assert len(report.pareto(frame)) == 4  # slower points are also more accurate here
    table = pd.read_csv(folder / TABLE)
    table.loc[3, "latency_ms"] = 0.5  # the most accurate point becomes the fastest too
    table.to_csv(folder / TABLE, index=False)
    front = report.pareto(report.point_frame(load_bench(folder)))
    assert list(front["mean"]) == pytest.approx([sum(final_of(3)) / 2])


def test_bench_of_a_folder_writes_its_report(folder):
    done = run_cli("bench", str(folder))
    assert done.returncode == 0, done.stderr
    text = (folder / BENCH_MD).read_text()
    assert "4 points x 2 seeds x 3 epochs" in text and "tau = 1.000" in text
    assert "Partial: 4 of 4" not in text
    assert "| pw_dw | relu | identity | 41.0 ± 1.4 | 46.0 ± 1.4 |" in text
    assert (folder / BENCH_HTML).read_text().count("<div") >= 1
    if report.CHROMIUM.exists() or os.environ.get("CI"):  # CI installs Chromium: it must draw
        assert (folder / BENCH_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({BENCH_PNG})" in text


def test_without_chromium_no_png_is_written(folder, tmp_path):
    bench = load_bench(folder)
    assert not report.write_png(report.figure(bench), tmp_path / "f.png", tmp_path / "none")
    assert not (tmp_path / "f.png").exists()


def test_a_partial_bench_says_so(folder):
    text = report.markdown(load_bench(folder), expected=72)
    assert "**Partial: 4 of 72 points so far" in text


def test_seed_tau_interval_and_epoch_taus_within_each_choice(tmp_path):
    three = variant(BENCH, blocks={"spectrum": [0.0, 0.5, 1.0]})
    folder = write_bench(tmp_path / "b", epochs=3, space=three)  # 3 groups x 2 orders
    table = pd.read_csv(folder / TABLE)
    # point 0 (the worst) leads after epoch 1: it inverts the early ranking of its order only
    curves = [[0.9, 0.9, c[2]] for c in json.loads(table.loc[0, "seed_curves"])]
    table.loc[0, "seed_curves"] = json.dumps(curves)
    table.to_csv(folder / TABLE, index=False)
    bench = load_bench(folder)
    assert report.seed_tau_ci(bench, samples=200) == pytest.approx((1.0, 1.0))
    frame = report.point_frame(bench)
    mine = frame[frame["key"] == table.loc[0, "arch_key"]].iloc[0]
    same = set(frame[frame["order"] == mine["order"]]["key"])
    assert len(same) == 3
    assert report.epoch_taus(bench, same) == pytest.approx([-1 / 3, -1 / 3, 1.0])
    text = report.epoch_tau_table(bench, frame)
    assert f"| order | {mine['order']} | 3 | -0.33 | -0.33 |" in text
    assert "| groups |" not in text  # 2 points per group count: too few to rank


@pytest.mark.parametrize("name", ["spectrum_bench", "spectrum_bench_gamma1"])
def test_a_committed_bench_is_complete_and_retabulates_from_its_own_files(name):
    committed = ROOT / "results" / "bench" / name
    bench = load_bench(committed)
    space = load_space(committed / read_meta(committed)["space_file"])
    expected = {genotype(space, p).key() for p in bench_points(space)}
    assert len(expected) == 72 and set(bench.points) == expected
    assert bench.seeds == 2 and bench.epochs >= 10
    assert all(len(c) == bench.epochs for p in bench.points.values() for c in p.curves)
    assert report.markdown(bench, expected=72) in (committed / BENCH_MD).read_text()


def test_the_gamma1_bench_copied_exactly_the_points_without_a_residual():
    gamma1, gamma0 = (ROOT / "results" / "bench" / n for n in ("spectrum_bench_gamma1",
                                                                "spectrum_bench"))
    table = read_table(gamma1).set_index("arch_key")
    copied = table[table[REUSED_FROM] == "spectrum_bench"]
    assert len(copied) == 36 and set(copied["s1_residual"]) == {"none"}
    assert set(table.drop(copied.index)["s1_residual"]) == {"identity"}
    source = read_table(gamma0).set_index("arch_key")
    assert (copied["seed_curves"] == source.loc[copied.index, "seed_curves"]).all()
